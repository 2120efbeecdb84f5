"""Orchestrations as an agent's tools: the tool's arguments are the orchestration's declared
inputs, a call runs it as a child run linked to the step (under the subflows' limits), and the
child's output is the call's result. Only the run's own organization's orchestrations are
reachable."""

from __future__ import annotations

import pytest

from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run, StepRun
from tests.runs.conftest import transform
from tests.runs.harness import run_to_rest

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


def agent_flow(make_flow, slug: str, script: list, *, name: str = "Asker", flow_slug="asker"):
    agent = {
        "model": "builtin/script",
        "tools": [{"orchestration": slug, "name": "double", "description": "Doubles n."}],
        "script": script,
    }
    node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Double 21"}}
    return make_flow([node], name=name, slug=flow_slug)


def test_a_call_runs_the_orchestration_as_a_child_and_its_output_is_the_result(make_flow):
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


def test_the_tools_schema_is_the_orchestrations_declared_inputs(make_flow):
    double(make_flow)
    # A call without the required input: the child run is refused, the step fails saying so.
    flow = agent_flow(make_flow, "double", [{"tool": "double", "args": {}}, None])
    run = run_to_rest(flow)
    step = StepRun.objects.filter(run=run, node_id="ask").latest("attempt")
    assert run.status == "failed"
    assert "input" in step.error["message"]
    assert not Run.objects.filter(parent_run=run).exists()


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
