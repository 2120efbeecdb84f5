"""/metrics for an organization's admin service account shows that organization's rows only;
the operator's METRICS_TOKEN shows the whole instance."""

from __future__ import annotations

import pytest
from django.test import Client

from core.choices import Role
from orchestrator.models import ApiToken, Organization
from orchestrator.services.orchestrations import create_orchestration
from runs.services import lifecycle
from tests.metrics.scrape import Scrape, scrape
from tests.runs.harness import drain

pytestmark = pytest.mark.django_db

PRICED_AGENT = {"model": "builtin/echo", "price": {"input_per_1k": 10.0, "output_per_1k": 20.0}}


def _flow(org: Organization, name: str, node: dict):
    definition = {"nodes": [node], "edges": []}
    return create_orchestration(org, {"name": name, "status": "active", "definition": definition})


def _fire(org: Organization, *, succeeded: int = 0, failed: int = 0, gated: int = 0) -> None:
    good = _flow(
        org,
        "Good",
        {"id": "ask", "type": "agent", "config": {"agent": PRICED_AGENT, "prompt": "Hi there"}},
    )
    bad = _flow(org, "Bad", {"id": "a", "type": "transform", "config": {"output": "{{ nope }}"}})
    gate = _flow(org, "Gated", {"id": "g", "type": "approval", "config": {"prompt": "Ok?"}})
    for orchestration, times in ((good, succeeded), (bad, failed), (gate, gated)):
        for _ in range(times):
            lifecycle.fire(orchestration, {})


def _scrape_as(org: Organization) -> Scrape:
    _, raw = ApiToken.issue(org, Role.ADMIN, service_account="prometheus")
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200, response.content
    return Scrape(response.content.decode())


@pytest.fixture
def two_tenants(org, other_org):
    _fire(org, succeeded=2, failed=1, gated=1)
    _fire(other_org, succeeded=1, gated=2)
    drain()
    return org, other_org


def _figures(metrics: Scrape) -> dict[str, float]:
    return {
        "succeeded": metrics.value("orchestrator_runs_total", status="succeeded", trigger="api"),
        "failed": metrics.value("orchestrator_runs_total", status="failed", trigger="api"),
        "in_progress": metrics.value("orchestrator_runs_in_progress"),
        "approvals": metrics.value("orchestrator_approvals_pending"),
        "agent_steps": metrics.series("orchestrator_steps_total").get(
            (("status", "succeeded"), ("type", "agent")), 0
        ),
        "tokens_in": metrics.value("orchestrator_llm_tokens_total", direction="input"),
        "cost": metrics.value("orchestrator_cost_usd_total"),
        "runs_timed": metrics.value("orchestrator_run_duration_seconds_count"),
        "steps_timed": sum(
            s.value for s in metrics.samples if s.name == "orchestrator_step_duration_seconds_count"
        ),
    }


def test_each_organization_s_token_sees_only_its_own_runs_steps_and_approvals(two_tenants):
    acme, globex = (_figures(_scrape_as(org)) for org in two_tenants)
    runs = ("succeeded", "failed", "in_progress", "approvals")
    assert [acme[name] for name in runs] == [2, 1, 1, 1]
    assert [globex[name] for name in runs] == [1, 0, 2, 2]
    assert (acme["agent_steps"], globex["agent_steps"]) == (2, 1)
    assert acme["tokens_in"] == 2 * globex["tokens_in"] > 0
    assert acme["cost"] == pytest.approx(2 * globex["cost"]) and globex["cost"] > 0


def test_the_metrics_token_sees_the_sum_of_every_organization(settings, two_tenants):
    acme, globex = (_figures(_scrape_as(org)) for org in two_tenants)
    instance = _figures(scrape(settings))
    for name, value in instance.items():
        assert value == pytest.approx(acme[name] + globex[name]), name


def test_an_organization_without_runs_sees_zeros_under_the_same_names(two_tenants):
    empty = Organization.objects.create(name="Initech", slug="initech")
    mine = _scrape_as(empty)
    assert set(_figures(mine).values()) == {0}
    assert mine.value("orchestrator_queue_depth") == 0


def test_queued_work_is_counted_in_its_own_organization_s_queue_depth(org, other_org):
    _fire(org, succeeded=3)
    assert _scrape_as(org).value("orchestrator_queue_depth") == 3
    assert _scrape_as(other_org).value("orchestrator_queue_depth") == 0


def test_webhook_request_counts_are_for_the_operator_only(settings, org):
    assert "orchestrator_webhook_requests_total" not in _scrape_as(org).names
    assert "orchestrator_webhook_requests_total" in scrape(settings).names
