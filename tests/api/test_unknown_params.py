"""Every list answers a query parameter it does not read with a 400 naming it: a typo such as
`?stauts=failed` would otherwise return everything and look like a filter that worked. The lists
that filter nothing (an orchestration's versions and triggers, the models) ignored them."""

from __future__ import annotations

import pytest

from orchestrator.services.orchestrations import create_orchestration
from runs.models import TriggerKind as RunTrigger
from runs.services import lifecycle

pytestmark = pytest.mark.django_db

LISTS = [
    "/api/v1/orchestrations",
    "/api/v1/orchestrations/{flow}/runs",
    "/api/v1/orchestrations/{flow}/versions",
    "/api/v1/orchestrations/{flow}/triggers",
    "/api/v1/runs",
    "/api/v1/approvals",
    "/api/v1/agents",
    "/api/v1/groups",
    "/api/v1/credentials",
    "/api/v1/mcp-servers",
    "/api/v1/templates",
    "/api/v1/gallery",
    "/api/v1/models",
    "/api/v1/runs/{run}/events",
]


@pytest.fixture
def run(flow):
    fired, _ = lifecycle.fire(flow, {}, trigger_kind=RunTrigger.API)
    return fired


@pytest.fixture
def flow(org):
    definition = {"nodes": [{"id": "a", "type": "transform", "config": {"output": "x"}}]}
    return create_orchestration(org, {"name": "Flow", "status": "active", "definition": definition})


@pytest.mark.parametrize("path", LISTS)
def test_a_list_refuses_a_parameter_it_does_not_read(admin_client, flow, run, path):
    url = path.format(flow=flow.pk, run=run.pk)
    response = admin_client.get(url, {"stauts": "failed"})
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["error"] == "validation_error"
    assert list(body["fields"]) == ["stauts"]
    assert body["detail"].startswith("Unknown query parameter 'stauts'. Allowed here: ")
    assert admin_client.get(url).status_code == 200
