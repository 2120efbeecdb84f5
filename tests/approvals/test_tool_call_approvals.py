"""Approval-gated tool calls: a call to a tool with an `approval` pauses the run (no worker held)
with an approval of kind tool_call showing the tool and its arguments; approved, the call runs
and the agent goes on; denied, the model is told so, with the comment; unanswered, the timeout
decides."""

from __future__ import annotations

import pytest
from django.utils import timezone

from approvals.models import Approval
from runs.models import RunEvent, StepRun
from runs.services import timers
from tests.runs.harness import drain
from tests.runs.servers import local_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with local_server() as running:
        yield running


def gated_flow(flow_api, server, **approval) -> dict:
    """An agent that asks for http_get, whose calls wait for approval, then answers with what
    the tool said (builtin/script's last item repeats the last tool result)."""
    url = f"{server.url}/orders/42?q=<b>"
    agent = {
        "model": "builtin/script",
        "tools": [{"tool": "http_get", "approval": {"timeout_s": 3600, **approval}}],
        "script": [{"tool": "http_get", "args": {"url": url}}, None],
    }
    node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Fetch order 42"}}
    response = flow_api.post(
        "/api/v1/orchestrations",
        {"name": "Gated tools", "status": "active", "definition": {"nodes": [node], "edges": []}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


def start(client, flow: dict) -> str:
    response = client.post(f"/api/v1/orchestrations/{flow['id']}/runs", {}, format="json")
    assert response.status_code in (200, 201, 202), response.json()
    drain()
    return response.json()["id"]


def pending(client, run_id: str) -> dict:
    items = client.get(f"/api/v1/approvals?pending=true&run={run_id}").json()["items"]
    assert len(items) == 1, items
    return items[0]


def test_a_gated_tool_call_waits_for_approval_then_runs(editor, server):
    run_id = start(editor, gated_flow(editor, server))
    run = editor.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "paused"
    # The step waits for a person, holding no worker, and the tool has not been called.
    assert StepRun.objects.get(run_id=run_id).status == "waiting"
    assert not server.hits
    asked = pending(editor, run_id)
    assert asked["kind"] == "tool_call" and asked["step_id"] == "ask"
    assert asked["tool"] == "http_get"
    assert asked["args"] == {"url": f"{server.url}/orders/42?q=<b>"}
    gate = run["human_input_required"]
    assert (gate["kind"], gate["tool"], gate["approval_id"]) == (
        "tool_call",
        "http_get",
        asked["id"],
    )
    assert gate["args"] == asked["args"]
    required = RunEvent.objects.get(run_id=run_id, type="human_input_required").data
    assert required["kind"] == "tool_call" and required["tool"] == "http_get"

    decided = editor.post(f"/api/v1/approvals/{asked['id']}/approve", {}, format="json")
    assert decided.status_code == 200, decided.json()
    drain()
    run = editor.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "succeeded", run
    assert sum(server.hits.values()) == 1
    assert '"status": 200' in run["output"]
    # One model call before the pause, one after: the first was not made again.
    step = StepRun.objects.get(run_id=run_id)
    assert (step.turns, step.tool_calls) == (2, 1)
    kinds = list(RunEvent.objects.filter(run_id=run_id).values_list("type", flat=True))
    assert kinds.count("agent_turn") == 2 and kinds.count("tool_result") == 1
    assert kinds.count("tool_execution") == 1  # told when asked, not again when approved
    assert "approval_decided" in kinds
    # A second decision is refused.
    again = editor.post(f"/api/v1/approvals/{asked['id']}/deny", {}, format="json")
    assert again.status_code == 409


def test_a_denied_tool_call_tells_the_model_with_the_comment(editor, server):
    run_id = start(editor, gated_flow(editor, server))
    asked = pending(editor, run_id)
    decided = editor.post(
        f"/api/v1/approvals/{asked['id']}/deny", {"comment": "not this order"}, format="json"
    )
    assert decided.status_code == 200, decided.json()
    drain()
    run = editor.get(f"/api/v1/runs/{run_id}").json()
    # The agent went on: the model read the denial as the call's result, and answered.
    assert run["status"] == "succeeded", run
    assert "denied this call: not this order" in run["output"]
    assert not server.hits
    result = RunEvent.objects.get(run_id=run_id, type="tool_result").data
    assert result["ok"] is False and "not this order" in result["preview"]
    assert result["denied"] is True  # told apart from a call that failed


def test_a_tool_call_denied_through_resume_is_denied_not_run(editor, server):
    run_id = start(editor, gated_flow(editor, server))
    asked = pending(editor, run_id)
    body = {"response": {"decision": "deny", "comment": "not this order"}, "async": True}
    answered = editor.post(f"/api/v1/runs/{run_id}/resume", body, format="json")
    assert answered.status_code == 202, answered.json()
    drain()
    decided = editor.get(f"/api/v1/approvals?run={run_id}").json()["items"][0]
    assert (decided["id"], decided["status"], decided["comment"]) == (
        asked["id"],
        "denied",
        "not this order",
    )
    assert not server.hits
    assert (
        "denied this call: not this order" in editor.get(f"/api/v1/runs/{run_id}").json()["output"]
    )


def test_resume_asks_a_tool_call_for_a_decision(editor, server):
    run_id = start(editor, gated_flow(editor, server))
    body = {"response": {"comment": "fine"}, "async": True}
    answered = editor.post(f"/api/v1/runs/{run_id}/resume", body, format="json")
    assert answered.status_code == 400, answered.json()
    assert "response.decision" in answered.json()["fields"]
    assert pending(editor, run_id)["status"] == "pending"
    assert not server.hits


@pytest.mark.parametrize(
    ("approved", "fetched", "status"), [(True, 1, "approved"), (False, 0, "denied")]
)
def test_a_step_waiting_on_a_tool_call_is_decided_through_its_approve_endpoint(
    editor, server, approved, fetched, status
):
    run_id = start(editor, gated_flow(editor, server))
    asked = pending(editor, run_id)
    body = {"approved": approved, "reason": "checked"}
    decided = editor.post(f"/api/v1/runs/{run_id}/steps/ask/approve", body, format="json")
    assert decided.status_code == 200, decided.json()
    assert (decided.json()["id"], decided.json()["status"]) == (asked["id"], status)
    drain()
    assert editor.get(f"/api/v1/runs/{run_id}").json()["status"] == "succeeded"
    assert sum(server.hits.values()) == fetched


def test_every_call_of_a_turn_is_shown_to_the_decider_before_any_runs(editor, server):
    """One approval asks about all the gated calls a model made in one turn: each one's
    arguments are shown, not only the first's, since approving it lets them all run."""
    first, second = f"{server.url}/orders/1", f"{server.url}/orders/2?all=<b>"
    agent = {
        "model": "builtin/script",
        "tools": [{"tool": "http_get", "approval": {}}],
        "script": [
            {
                "tool_calls": [
                    {"name": "http_get", "arguments": {"url": first}},
                    {"name": "http_get", "arguments": {"url": second}},
                ]
            },
            "Fetched both.",
        ],
    }
    node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Fetch"}}
    flow = editor.post(
        "/api/v1/orchestrations",
        {"name": "Two calls", "status": "active", "definition": {"nodes": [node]}},
        format="json",
    ).json()
    run_id = start(editor, flow)
    expected = [
        {"tool": "http_get", "args": {"url": first}},
        {"tool": "http_get", "args": {"url": second}},
    ]
    asked = pending(editor, run_id)
    assert asked["calls"] == expected
    assert "2 calls" in asked["prompt"]
    gate = editor.get(f"/api/v1/runs/{run_id}").json()["human_input_required"]
    assert gate["calls"] == expected
    assert not server.hits
    editor.post(f"/api/v1/approvals/{asked['id']}/approve", {}, format="json")
    drain()
    assert sum(server.hits.values()) == 2


@pytest.mark.parametrize(("on_timeout", "fetched"), [("deny", 0), ("approve", 1)])
def test_an_unanswered_tool_call_is_decided_by_its_timeout(editor, server, on_timeout, fetched):
    run_id = start(editor, gated_flow(editor, server, on_timeout=on_timeout))
    asked = pending(editor, run_id)
    Approval.objects.filter(pk=asked["id"]).update(expires_at=timezone.now())
    timers.reap()
    drain()
    run = editor.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "succeeded", run
    assert sum(server.hits.values()) == fetched


def test_a_tool_approval_is_validated(editor):
    agent = {
        "model": "builtin/script",
        "tools": [{"tool": "http_get", "approval": {"on_timeout": "maybe", "when": 1}}, 7],
    }
    node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "x"}}
    response = editor.post(
        "/api/v1/orchestrations",
        {"name": "Bad", "definition": {"nodes": [node], "edges": []}},
        format="json",
    )
    assert response.status_code == 400
    text = str(response.json())
    assert "tools[0].approval.on_timeout" in text and "tools[0].approval.when" in text
    assert "tools[1]" in text
