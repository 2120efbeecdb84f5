"""Approval-gated tool calls: a call to a tool with an `approval` pauses the run (no worker held)
with an approval of kind tool_call showing the tool and its arguments; approved, the call runs
and the agent goes on; denied, the model is told so, with the comment; unanswered, the timeout
decides."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import Approval
from runs.models import Run, RunEvent, StepRun
from runs.services import execution, timers
from tests.runs.harness import drain
from tests.runs.servers import local_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with local_server() as running:
        yield running


def gated_flow(flow_api, server, *, settings=None, **approval) -> dict:
    """An agent that asks for http_get, whose calls wait for approval, then answers with what
    the tool said (builtin/script's last item repeats the last tool result). Priced: each model
    call costs what its words cost."""
    url = f"{server.url}/orders/42?q=<b>"
    agent = {
        "model": "builtin/script",
        "tools": [{"tool": "http_get", "approval": {"timeout_s": 3600, **approval}}],
        "script": [{"tool": "http_get", "args": {"url": url}}, None],
        "price": {"input_per_1k": 10, "output_per_1k": 20},
    }
    node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Fetch order 42"}}
    definition = {"nodes": [node], "edges": [], **({"settings": settings} if settings else {})}
    response = flow_api.post(
        "/api/v1/orchestrations",
        {"name": "Gated tools", "status": "active", "definition": definition},
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
    assert answered.json()["detail"].startswith("This tool call is answered with")
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


def spent(run_id: str) -> tuple[dict, dict, list]:
    """The run's and its step's (latest attempt's) tokens and cost, and each model call's."""
    run = Run.objects.get(pk=run_id)
    step = StepRun.objects.filter(run_id=run_id).order_by("-attempt").first()
    turns = [
        event.data
        for event in RunEvent.objects.filter(run_id=run_id, type="agent_turn").order_by("seq")
    ]
    return (
        {"tokens": (run.tokens_input, run.tokens_output), "cost": float(run.cost_usd)},
        {"tokens": (step.tokens_input, step.tokens_output), "cost": float(step.cost_usd)},
        turns,
    )


def test_what_a_waiting_step_spent_counts_while_it_waits_and_once_in_all(editor, server):
    run_id = start(editor, gated_flow(editor, server))
    run, step, turns = spent(run_id)
    # The model call that asked for the tool is paid for: the step and the run show it while
    # people decide (it was $0 and no tokens until the step ended).
    [asked] = turns
    assert step["tokens"] == (asked["tokens"]["input"], asked["tokens"]["output"])
    assert step["cost"] == pytest.approx(asked["cost_usd"]) and step["cost"] > 0
    assert run == step
    shown = editor.get(f"/api/v1/runs/{run_id}").json()
    assert shown["cost_usd"] == pytest.approx(step["cost"])
    [row] = editor.get(f"/api/v1/runs/{run_id}/steps").json()["steps"]
    assert row["status"] == "waiting" and row["tokens"]["input"] == asked["tokens"]["input"]

    approval = pending(editor, run_id)
    editor.post(f"/api/v1/approvals/{approval['id']}/approve", {}, format="json")
    drain()
    run, step, turns = spent(run_id)
    assert len(turns) == 2
    # Each model call counted once: the first when the step waited, the second at its end.
    total = (sum(t["tokens"]["input"] for t in turns), sum(t["tokens"]["output"] for t in turns))
    assert step["tokens"] == total and run["tokens"] == total
    assert step["cost"] == pytest.approx(sum(t["cost_usd"] for t in turns))
    assert run == step


def test_a_step_lost_after_it_waited_does_not_pay_again_for_what_it_spent_then(editor, server):
    """Approved, the step goes on; its worker is lost after the tool's result was recorded. The
    next attempt goes on from the transcript and counts only the calls it makes."""
    run_id = start(editor, gated_flow(editor, server))
    approval = pending(editor, run_id)
    # The approved attempt runs the tool, records its result, and its worker dies.
    recorded = execution.save_transcript

    def lose_the_worker(step, transcript, told):
        recorded(step, transcript, told)
        raise SystemExit("the worker is gone")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(execution, "save_transcript", lose_the_worker)
        editor.post(f"/api/v1/approvals/{approval['id']}/approve", {}, format="json")
        with pytest.raises(SystemExit):
            drain()
    lost = StepRun.objects.get(run_id=run_id, status="running")
    StepRun.objects.filter(pk=lost.pk).update(lease_expires_at=timezone.now())
    timers.requeue_expired(lost)
    drain()

    run, _, turns = spent(run_id)
    assert Run.objects.get(pk=run_id).status == "succeeded"
    assert sum(server.hits.values()) == 1  # the recorded result was not fetched again
    assert len(turns) == 2
    total = (sum(t["tokens"]["input"] for t in turns), sum(t["tokens"]["output"] for t in turns))
    assert run["tokens"] == total
    assert run["cost"] == pytest.approx(sum(t["cost_usd"] for t in turns))
    # Each attempt's row holds what it spent: the metrics that add the rows up agree.
    rows = StepRun.objects.filter(run_id=run_id)
    assert sum(r.tokens_input for r in rows) == total[0]
    assert float(sum(r.cost_usd for r in rows)) == pytest.approx(run["cost"])


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


def test_a_step_that_waited_keeps_its_start_and_its_duration_spans_the_wait(editor, server):
    run_id = start(editor, gated_flow(editor, server))
    hour_ago = timezone.now() - timedelta(hours=1)
    # As if people took an hour to decide: the step began, and asked, an hour ago.
    StepRun.objects.filter(run_id=run_id).update(started_at=hour_ago)
    approval = pending(editor, run_id)
    editor.post(f"/api/v1/approvals/{approval['id']}/approve", {}, format="json")
    drain()
    step = StepRun.objects.get(run_id=run_id)
    assert step.status == "succeeded" and step.started_at == hour_ago
    [row] = editor.get(f"/api/v1/runs/{run_id}/steps").json()["steps"]
    assert row["duration_ms"] >= 3600 * 1000
