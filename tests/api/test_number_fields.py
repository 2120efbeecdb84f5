"""Text where a number or a boolean belongs, or a boolean where a number does, is a 400 naming
the field: DRF's fields would store `"max_tokens": "12"` as 12, `"temperature": true` as 1.0 and
`"is_public": "yes"` as true, and the client would never hear of its mistake (as for text, see
test_text_fields)."""

from __future__ import annotations

import pytest

from orchestrator.models import Agent, Orchestration
from tests.api.helpers import field_errors, two_step

pytestmark = pytest.mark.django_db

ORCHESTRATIONS = "/api/v1/orchestrations"


def assert_refused(response, field: str) -> None:
    field_errors(response, field)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"max_tokens": "12"}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_turns": "3"}, "max_turns"),
        ({"temperature": True}, "temperature"),
        ({"temperature": "0.5"}, "temperature"),
        ({"price": {"input_per_1k": "1"}}, "price.input_per_1k"),
        ({"price": {"output_per_1k": False}}, "price.output_per_1k"),
    ],
)
def test_text_or_a_boolean_in_an_agents_number_is_refused(editor, extra, field):
    body = {"name": "a", "model": "builtin/echo", **extra}
    assert_refused(editor.post("/api/v1/agents", body, format="json"), field)
    assert not Agent.objects.exists()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"is_public": "yes"}, "is_public"),
        ({"is_public": 1}, "is_public"),
        ({"credit_limit": "5"}, "credit_limit"),
        ({"credit_limit": True}, "credit_limit"),
        ({"settings": {"max_subflow_depth": "3"}}, "settings.max_subflow_depth"),
    ],
)
def test_text_in_an_orchestrations_number_or_boolean_is_refused(editor, extra, field):
    assert_refused(editor.post(ORCHESTRATIONS, two_step(**extra), format="json"), field)
    assert not Orchestration.objects.exists()


def test_numbers_and_booleans_as_json_still_work(editor):
    agent = {"name": "a", "model": "builtin/echo", "max_tokens": 12, "temperature": 1}
    agent["price"] = {"input_per_1k": 1, "output_per_1k": 0.5}
    created = editor.post("/api/v1/agents", agent, format="json")
    assert created.status_code == 201, created.json()
    assert (created.json()["max_tokens"], created.json()["temperature"]) == (12, 1.0)
    flow = two_step(is_public=False, credit_limit=5, settings={"max_subflow_depth": 3})
    assert editor.post(ORCHESTRATIONS, flow, format="json").status_code == 201
