"""Orchestrations as an agent's tools: the tool's arguments are the orchestration's declared
inputs, a call runs it as a child run linked to the step (under the subflows' limits), and the
child's output is the call's result. Only the run's own organization's orchestrations are
reachable."""

from __future__ import annotations

from decimal import Decimal

import pytest

from approvals.models import Approval
from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run, RunEvent, StepRun
from runs.services import lifecycle, timers
from tests.runs.conftest import transform
from tests.runs.harness import drain, run_to_rest, tool_returns

pytestmark = pytest.mark.django_db

DOUBLE_INPUTS = [{"name": "n", "type": "number", "required": True}]


def double(make_flow):
    """The orchestration offered as a tool: it doubles its input."""
    return make_flow(
        [transform("calc", {"doubled": "{{ input.n * 2 }}"})],
        inputs=DOUBLE_INPUTS,
        output_type="json",
        name="Double",
        slug="double",
    )


def agent_flow(
    make_flow, slug: str, script: list, *, name: str = "Asker", flow_slug="asker", **item
):
    agent = {
        "model": "builtin/script",
        "tools": [{"orchestration": slug, "name": "double", "description": "Doubles n.", **item}],
        "script": script,
    }
    node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Double 21"}}
    return make_flow([node], name=name, slug=flow_slug)


def test_a_call_runs_the_orchestration_as_a_child_and_its_output_is_the_result(make_flow, editor):
    double(make_flow)
    # The script calls the tool, then answers with what the tool returned.
    flow = agent_flow(make_flow, "double", [{"tool": "double", "args": {"n": 21}}, None])
    run = run_to_rest(flow)
    assert run.status == "succeeded", run.error
    step = StepRun.objects.filter(run=run, node_id="ask").latest("attempt")
    child = Run.objects.get(parent_run=run)
    # The child is linked to the step and to the call it answers.
    assert (child.parent_step_id, child.tool_call_step_id) == ("ask", step.pk)
    assert child.tool_call_id and child.status == "succeeded"
    assert child.input == {"n": 21}
    assert step.child_run_id == child.pk
    # The run's steps link it, as a subflow step's.
    (listed,) = editor.get(f"/api/v1/runs/{run.pk}").json()["steps"]
    assert listed["child_run_id"] == str(child.pk)
    # The model's next call was given the child's output as the tool's result.
    returned = [
        part["content"]
        for message in step.transcript
        for part in message["parts"]
        if part["part_kind"] == "tool-return"
    ]
    assert returned == [child.output]
    assert "42" in str(child.output)
    assert "42" in str(step.output)
    # The live log tells of the call once, and of its result.
    events = list(RunEvent.objects.filter(run=run).values_list("type", "data"))
    assert [d["tool_name"] for k, d in events if k == "tool_execution"] == ["double"]
    (result,) = [d for k, d in events if k == "tool_result"]
    assert result["ok"] and "42" in result["preview"]


def test_the_tools_schema_is_the_orchestrations_declared_inputs(make_flow):
    double(make_flow)
    # A call without the required input goes back to the model, which calls again with it.
    script = [{"tool": "double", "args": {}}, {"tool": "double", "args": {"n": 2}}, None]
    run = run_to_rest(agent_flow(make_flow, "double", script))
    assert run.status == "succeeded", run.error
    (child,) = Run.objects.filter(parent_run=run)
    assert child.input == {"n": 2}
    step = StepRun.objects.get(run=run, node_id="ask")
    (retried, result) = tool_returns(step)
    assert retried.startswith("the arguments do not match the inputs of 'double'")
    assert "'n' is a required property" in retried
    assert result == child.output == {"doubled": 4}


def test_another_organizations_orchestration_is_never_reachable(make_flow, other_org):
    theirs = create_orchestration(
        other_org,
        {
            "name": "Theirs",
            "slug": "theirs",
            "status": "active",
            "definition": {"nodes": [transform("t", "secret")], "edges": []},
        },
    )
    for ref in ("theirs", str(theirs.pk)):
        flow = agent_flow(
            make_flow, ref, [{"tool": "double", "args": {}}, None], flow_slug=f"asker-{ref}"[:40]
        )
        run = run_to_rest(flow)
        assert run.status == "failed"
        step = StepRun.objects.get(run=run, node_id="ask")
        assert "no such orchestration in this organization" in step.error["message"]
        assert ref in step.error["message"]
    assert not Run.objects.filter(orchestration=theirs).exists()


def test_an_orchestration_calling_itself_as_a_tool_stops_at_the_depth_limit(make_flow):
    flow = agent_flow(
        make_flow,
        "loop",
        [{"tool": "double", "args": {"n": 1}}, None],
        name="Loop",
        flow_slug="loop",
    )
    run = run_to_rest(flow)
    assert run.status == "failed"
    assert run.error["code"] == "subflow_depth_exceeded"
    deepest = Run.objects.order_by("-depth").first()
    assert deepest.depth == 5
    step = StepRun.objects.get(run=deepest, node_id="ask")
    assert step.error["message"] == "Subflow depth 6 exceeds max_subflow_depth 5."


def test_calls_in_one_answer_each_run_a_child_and_their_cost_counts_in_the_parents(make_flow):
    priced = {
        "model": "builtin/echo",
        "price": {"input_per_1k": 1000, "output_per_1k": 1000},
    }
    make_flow(
        [
            {
                "id": "say",
                "type": "agent",
                "config": {"agent": priced, "prompt": "n is {{ input.n }}"},
            }
        ],
        inputs=DOUBLE_INPUTS,
        name="Say",
        slug="say",
    )
    calls = {"tool_calls": [{"name": "double", "arguments": {"n": n}} for n in (1, 2)]}
    run = run_to_rest(agent_flow(make_flow, "say", [calls, "done"]))
    assert run.status == "succeeded", run.error
    children = list(Run.objects.filter(parent_run=run).order_by("input__n"))
    assert [c.input for c in children] == [{"n": 1}, {"n": 2}]
    assert all(c.status == "succeeded" and c.cost_usd > 0 for c in children)
    step = StepRun.objects.get(run=run, node_id="ask")
    assert sorted(tool_returns(step)) == ["n is 1", "n is 2"]
    # The children's cost is the parent's too (the scripted agent itself is free).
    assert run.cost_usd == sum(c.cost_usd for c in children)
    assert run.tokens_input >= sum(c.tokens_input for c in children)


def test_a_failed_child_is_an_error_the_agent_reads(make_flow):
    make_flow(
        [{"id": "boom", "type": "transform", "config": {"output": "{{ input.n.nope.deeper }}"}}],
        inputs=DOUBLE_INPUTS,
        name="Boom",
        slug="boom",
    )
    run = run_to_rest(agent_flow(make_flow, "boom", [{"tool": "double", "args": {"n": 1}}, None]))
    child = Run.objects.get(parent_run=run)
    assert child.status == "failed"
    assert run.status == "succeeded", run.error
    step = StepRun.objects.get(run=run, node_id="ask")
    (returned,) = tool_returns(step)
    assert returned.startswith(f"error: run {child.pk} failed:")
    (told,) = RunEvent.objects.filter(run=run, type="tool_result").values_list("data", flat=True)
    assert told["ok"] is False


def test_an_approval_gated_orchestration_tool_runs_its_child_once_approved(make_flow, editor):
    double(make_flow)
    flow = agent_flow(
        make_flow,
        "double",
        [{"tool": "double", "args": {"n": 5}}, None],
        approval={"timeout_s": 3600},
    )
    run = run_to_rest(flow)
    assert run.status == "paused"
    assert not Run.objects.filter(parent_run=run).exists()
    asked = Approval.objects.get(run=run)
    assert (asked.kind, asked.payload["tool"], asked.payload["args"]) == (
        "tool_call",
        "double",
        {"n": 5},
    )
    decided = editor.post(f"/api/v1/approvals/{asked.pk}/approve", {}, format="json")
    assert decided.status_code == 200, decided.json()
    drain()
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    child = Run.objects.get(parent_run=run)
    assert child.output == {"doubled": 10}
    step = StepRun.objects.get(run=run, node_id="ask")
    assert tool_returns(step) == [child.output]
    kinds = list(RunEvent.objects.filter(run=run).values_list("type", flat=True))
    assert kinds.count("subflow_started") == 1


def test_a_denied_orchestration_call_starts_no_child(make_flow, editor):
    double(make_flow)
    flow = agent_flow(
        make_flow, "double", [{"tool": "double", "args": {"n": 5}}, None], approval={}
    )
    run = run_to_rest(flow)
    asked = Approval.objects.get(run=run)
    editor.post(f"/api/v1/approvals/{asked.pk}/deny", {"comment": "no"}, format="json")
    drain()
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert not Run.objects.filter(parent_run=run).exists()
    assert "denied this call: no" in str(run.output)


def test_cancelling_the_run_cancels_the_tool_calls_child_runs(make_flow):
    make_flow(
        [{"id": "gate", "type": "approval", "config": {"prompt": "Ok?"}}],
        inputs=DOUBLE_INPUTS,
        name="Gated",
        slug="gated",
    )
    calls = {"tool_calls": [{"name": "double", "arguments": {"n": n}} for n in (1, 2)]}
    run = run_to_rest(agent_flow(make_flow, "gated", [calls, "done"]))
    # The parent runs on while its children wait for people (as a subflow step's parent does):
    # it asks nobody anything itself.
    assert run.status == "running"
    children = Run.objects.filter(parent_run=run)
    assert [c.status for c in children] == ["paused", "paused"]
    lifecycle.cancel(run)
    drain()
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert [c.status for c in children.all()] == ["cancelled", "cancelled"]


def say(make_flow):
    """A priced child: an echo agent that costs something."""
    priced = {"model": "builtin/echo", "price": {"input_per_1k": 1000, "output_per_1k": 1000}}
    config = {"agent": priced, "prompt": "n is {{ input.n }}"}
    return make_flow(
        [{"id": "say", "type": "agent", "config": config}],
        inputs=DOUBLE_INPUTS,
        name="Say",
        slug="say",
    )


def test_each_childs_cost_counts_once_when_the_step_waits_again(make_flow):
    say(make_flow)
    script = [{"tool": "double", "args": {"n": 1}}, {"tool": "double", "args": {"n": 2}}, "done"]
    run = run_to_rest(agent_flow(make_flow, "say", script))
    assert run.status == "succeeded", run.error
    children = list(Run.objects.filter(parent_run=run))
    assert len(children) == 2 and all(c.cost_usd > 0 for c in children)
    assert run.cost_usd == sum(c.cost_usd for c in children)
    step = StepRun.objects.get(run=run, node_id="ask")
    assert tool_returns(step) == ["n is 1", "n is 2"]


def test_a_gated_and_an_ungated_call_in_one_answer_both_get_their_result(make_flow, editor):
    double(make_flow)
    say(make_flow)
    agent = {
        "model": "builtin/script",
        "tools": [
            {"orchestration": "double", "name": "double", "approval": {}},
            {"orchestration": "say", "name": "say"},
        ],
        "script": [
            {
                "tool_calls": [
                    {"name": "double", "arguments": {"n": 4}},
                    {"name": "say", "arguments": {"n": 7}},
                ]
            },
            "done",
        ],
    }
    node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Go"}}
    run = run_to_rest(make_flow([node], name="Both", slug="both"))
    # The ungated call's child ran; the step still waits for the person.
    assert run.status == "paused"
    assert [c.input for c in Run.objects.filter(parent_run=run)] == [{"n": 7}]
    assert StepRun.objects.get(run=run, node_id="ask").status == "waiting"
    asked = Approval.objects.get(run=run)
    editor.post(f"/api/v1/approvals/{asked.pk}/approve", {}, format="json")
    drain()
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    # One child per call, each once.
    assert sorted(c.input["n"] for c in Run.objects.filter(parent_run=run)) == [4, 7]
    step = StepRun.objects.get(run=run, node_id="ask")
    assert sorted(map(str, tool_returns(step))) == ["n is 7", "{'doubled': 8}"]


def test_a_draft_orchestration_is_not_a_tool(make_flow):
    double(make_flow).__class__.objects.filter(slug="double").update(status="draft")
    run = run_to_rest(agent_flow(make_flow, "double", [{"tool": "double", "args": {"n": 1}}]))
    assert run.status == "failed"
    step = StepRun.objects.get(run=run, node_id="ask")
    assert "is draft: only an active orchestration" in step.error["message"]
    assert not Run.objects.filter(parent_run=run).exists()


def test_the_reaper_resumes_a_step_whose_children_ended_when_the_message_was_lost(
    make_flow, editor
):
    make_flow(
        [{"id": "gate", "type": "approval", "config": {"prompt": "Ok?"}}],
        inputs=DOUBLE_INPUTS,
        name="Gated",
        slug="gated",
    )
    run = run_to_rest(agent_flow(make_flow, "gated", [{"tool": "double", "args": {"n": 1}}, None]))
    child = Run.objects.get(parent_run=run)
    asked = Approval.objects.get(run=child)
    # The child ends; the message that would resume its parent is never sent (no commit here).
    editor.post(f"/api/v1/approvals/{asked.pk}/approve", {}, format="json")
    child.refresh_from_db()
    assert child.status == "succeeded"
    step = StepRun.objects.get(run=run, node_id="ask")
    assert step.status == "waiting"
    assert timers.reap()["children"] == 1
    step.refresh_from_db()
    assert step.status == "pending"
    drain()
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert tool_returns(StepRun.objects.get(run=run, node_id="ask")) == [child.output]
    assert timers.reap()["children"] == 0


# --- what the children cost, under the parent's credit limit ----------------------------------

PRICED_SCRIPT = {"model": "builtin/script", "price": {"input_per_1k": 1000, "output_per_1k": 1000}}


def priced_asker(make_flow, script: list, *, after: bool = False, **fields):
    """An agent step whose own model calls cost something (a dollar a word), calling `say`
    (a priced child) as its tool `double`; with `after`, a step follows it."""
    tool = {"orchestration": "say", "name": "double", "description": "Says n."}
    agent = {**PRICED_SCRIPT, "tools": [tool], "script": script}
    nodes = [{"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Go"}}]
    edges = []
    if after:
        nodes.append(transform("after", 1))
        edges.append({"source": "ask", "target": "after"})
    return make_flow(nodes, edges, name="Asker", slug="asker", **fields)


def test_the_steps_cost_holds_its_childrens_once_and_the_run_counts_it_once(make_flow):
    say(make_flow)
    calls = {"tool_calls": [{"name": "double", "arguments": {"n": n}} for n in (1, 2)]}
    script = [calls, {"tool": "double", "args": {"n": 3}}, "done"]
    run = run_to_rest(priced_asker(make_flow, script))
    assert run.status == "succeeded", run.error
    children = list(Run.objects.filter(parent_run=run))
    assert len(children) == 3 and all(c.cost_usd > 0 for c in children)
    step = StepRun.objects.get(run=run, node_id="ask")
    turns = RunEvent.objects.filter(run=run, type="agent_turn", step_id="ask")
    own = sum(Decimal(str(t.data["cost_usd"])) for t in turns)
    assert own > 0 and step.turns == turns.count() == 3
    assert step.cost_usd == own + sum(c.cost_usd for c in children)
    assert step.tokens_input == (
        sum(t.data["tokens"]["input"] for t in turns) + sum(c.tokens_input for c in children)
    )
    # The run's only step: its total is the step's, the children counted once.
    assert (run.cost_usd, run.tokens_input) == (step.cost_usd, step.tokens_input)
    (done,) = RunEvent.objects.filter(run=run, type="step_complete", step_id="ask")
    assert Decimal(str(done.data["cost_usd"])) == step.cost_usd


def test_children_that_spend_over_the_parents_credit_limit_stop_it(make_flow):
    say(make_flow)
    calls = {"tool_calls": [{"name": "double", "arguments": {"n": n}} for n in (1, 2)]}
    # Another call and an answer would follow if the children's cost went unchecked.
    script = [calls, {"tool": "double", "args": {"n": 3}}, "done"]
    # The agent's first call costs $1 a word; the children cost more than the rest.
    run = run_to_rest(priced_asker(make_flow, script, after=True, credit_limit="10"))
    assert run.status == "failed"
    assert run.error["code"] == "cost_limit_exceeded"
    assert run.error["step_id"] == "ask"
    step = StepRun.objects.get(run=run, node_id="ask")
    assert (step.status, step.error["code"]) == ("failed", "cost_limit_exceeded")
    assert "child runs" in step.error["message"]
    # The agent made no further model call, started no further child, and nothing followed.
    assert RunEvent.objects.filter(run=run, type="agent_turn").count() == 1
    children = list(Run.objects.filter(parent_run=run))
    assert len(children) == 2
    assert not StepRun.objects.filter(run=run, node_id="after", status="succeeded").exists()
    assert run.cost_usd > 10
    assert run.cost_usd == step.cost_usd


def test_with_budget_action_approve_childrens_cost_asks_for_more_budget(make_flow):
    say(make_flow)
    calls = {"tool_calls": [{"name": "double", "arguments": {"n": n}} for n in (1, 2)]}
    flow = priced_asker(
        make_flow,
        [calls, "done"],
        after=True,
        credit_limit="10",
        settings={"budget_action": "approve"},
    )
    run = run_to_rest(flow)
    # The step ends (it is not stopped inside), and the run waits for a raise before `after`.
    assert (run.status, run.budget_hold) == ("paused", True)
    step = StepRun.objects.get(run=run, node_id="ask")
    assert step.status == "succeeded"
    assert not StepRun.objects.filter(run=run, node_id="after").exists()
    asked = Approval.objects.get(run=run, status="pending")
    assert asked.prompt.startswith("Cost limit exceeded:")
    assert run.cost_usd == step.cost_usd > 10
