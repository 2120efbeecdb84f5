"""The service layer driving runs of transforms, delays and subflows to their end."""

from __future__ import annotations

import itertools
from datetime import timedelta
from unittest.mock import patch

import pytest
from django.utils import timezone

from core.domain_errors import Conflict, InvalidRequest, OrchestrationNotActive, TriggerMismatch
from orchestrator.models import Orchestration
from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run, RunEvent
from runs.services import lifecycle
from tests.runs.conftest import edge, transform
from tests.runs.harness import drain, run_to_rest, skip_waits, statuses

pytestmark = pytest.mark.django_db
SECOND = timedelta(seconds=1)


def test_a_chain_of_transforms_runs_in_order_and_types_its_output(make_flow):
    flow = make_flow(
        [transform("a", "{{ input.n * 2 }}"), transform("b", {"double": "{{ steps.a.output }}"})],
        [edge("a", "b")],
        inputs=[{"name": "n", "type": "integer", "required": True}],
        output="{{ steps.b.output }}",
        output_type="json",
    )
    run = run_to_rest(flow, {"n": 21})
    assert run.status == "succeeded"
    assert run.output == {"double": 42}
    assert (run.steps_completed, run.steps_total) == (2, 2)
    types = list(RunEvent.objects.filter(run=run).values_list("type", flat=True))
    assert types == [
        "run_queued",
        "run_started",
        "step_start",
        "step_complete",
        "step_start",
        "step_complete",
        "orchestration_complete",
    ]
    assert list(RunEvent.objects.filter(run=run).values_list("seq", flat=True)) == list(range(1, 8))
    # What the live trace shows of each step's time: measured, never null.
    completions = RunEvent.objects.filter(run=run, type="step_complete")
    assert all(isinstance(event.data["duration_ms"], int) for event in completions)


def test_an_inline_chain_takes_the_time_its_steps_take(make_flow):
    # The chain runs in one change of the run, whose clock stood still: a chain of 2,000
    # transforms took seconds, and the run and each step said 0 ms.
    flow = make_flow(
        [transform("a", "x"), transform("b", "y"), transform("c", "z")],
        [edge("a", "b"), edge("b", "c")],
    )
    start = timezone.now()
    ticks = itertools.count()
    with patch("runs.services.progress.timezone.now", lambda: start + next(ticks) * SECOND):
        run = run_to_rest(flow)
    steps = {s.node_id: s for s in run.step_runs.all()}
    assert [steps[n].finished_at > steps[n].started_at for n in "abc"] == [True] * 3
    assert steps["a"].finished_at <= steps["b"].started_at < steps["c"].started_at
    assert run.finished_at >= steps["c"].finished_at > run.started_at
    assert run.duration_ms >= 5000


def test_without_an_output_template_the_last_finished_step_is_the_output(make_flow):
    run = run_to_rest(make_flow([transform("a", "x"), transform("b", "y")], [edge("a", "b")]))
    assert run.output == "y"


def test_a_false_condition_skips_the_branch_and_what_only_it_feeds(make_flow):
    flow = make_flow(
        [
            transform("start", "{{ input.kind }}"),
            transform("big", "B"),
            transform("after_big", 1),
            transform("small", "S"),
            transform("join", "{{ steps.small.status }}"),
        ],
        [
            edge("start", "big", "output == 'big'"),
            edge("big", "after_big"),
            edge("start", "small", "output == 'small'"),
            edge("after_big", "join"),
            edge("small", "join"),
        ],
    )
    run = run_to_rest(flow, {"kind": "small"})
    assert statuses(run) == {
        "start": "succeeded",
        "big": "skipped",
        "after_big": "skipped",
        "small": "succeeded",
        "join": "succeeded",
    }
    assert run.output == "succeeded"


def test_parallel_branches_join_and_output_key_fills_shared_state(make_flow):
    flow = make_flow(
        [
            transform("a", 1, output_key="first"),
            transform("b", 2, output_key="second"),
            transform("sum", "{{ state.first + state.second }}"),
        ],
        [edge("a", "sum"), edge("b", "sum")],
        output_type="json",
    )
    run = run_to_rest(flow)
    assert run.shared_state == {"first": 1, "second": 2}
    assert run.output == 3


def test_a_template_error_fails_the_run_naming_the_step(make_flow):
    flow = make_flow(
        [transform("a", "{{ steps.nope.output }}"), transform("b", 1)], [edge("a", "b")]
    )
    run = run_to_rest(flow)
    assert run.status == "failed"
    assert run.error["code"] == "step_failed"
    assert run.error["step_id"] == "a"
    assert "nope" in run.error["detail"]
    assert statuses(run) == {"a": "failed", "b": "cancelled"}


def test_on_error_continue_lets_the_flow_go_on(make_flow):
    flow = make_flow(
        [transform("a", "{{ boom }}", on_error="continue"), transform("b", "{{ steps.a.status }}")],
        [edge("a", "b")],
    )
    run = run_to_rest(flow)
    assert run.status == "succeeded"
    assert run.output == "failed"


def test_a_payload_schema_mismatch_fails_the_source_step(make_flow):
    flow = make_flow(
        [transform("a", {"n": "x"}), transform("b", 1)],
        [
            {
                "source": "a",
                "target": "b",
                "payload_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
            }
        ],
    )
    run = run_to_rest(flow)
    assert run.status == "failed"
    assert "$.n" in run.error["detail"]


def test_a_delay_waits_without_a_worker_then_continues(make_flow):
    flow = make_flow(
        [{"id": "wait", "type": "delay", "config": {"seconds": 3600}}, transform("after", "done")],
        [edge("wait", "after")],
    )
    run = run_to_rest(flow)
    assert run.status == "running"
    assert statuses(run) == {"wait": "waiting"}
    skip_waits()
    drain()
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_a_subflow_runs_a_child_and_takes_its_output(org, make_flow):
    make_flow(
        [transform("shout", "{{ input.word | upper }}")],
        inputs=[{"name": "word", "type": "string"}],
        name="Child",
    )
    parent = make_flow(
        [
            {
                "id": "call",
                "type": "subflow",
                "config": {"orchestration": "child", "input": {"word": "{{ input.w }}"}},
            },
            transform("wrap", "<{{ steps.call.output }}>"),
        ],
        [edge("call", "wrap")],
        name="Parent",
    )
    run = run_to_rest(parent, {"w": "hi"})
    assert run.status == "succeeded", run.error
    assert run.output == "<HI>"
    child = Run.objects.get(parent_run=run)
    assert (child.depth, child.trigger_kind, child.parent_step_id) == (1, "subflow", "call")


def test_a_subflow_deeper_than_allowed_fails_with_its_code(org, make_flow):
    make_flow(
        [{"id": "again", "type": "subflow", "config": {"orchestration": "loop"}}],
        name="Loop",
        settings={"max_subflow_depth": 2},
    )
    run = run_to_rest(Orchestration.objects.get(slug="loop"))
    assert run.status == "failed"
    assert run.error["code"] == "subflow_depth_exceeded"
    assert Run.objects.filter(orchestration__slug="loop").count() == 3


def test_cancelling_a_waiting_run_ends_it_cancelled_and_a_second_cancel_conflicts(make_flow):
    flow = make_flow(
        [{"id": "wait", "type": "delay", "config": {"seconds": 600}}, transform("after", 1)],
        [edge("wait", "after")],
    )
    run = run_to_rest(flow)
    lifecycle.cancel(run)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert run.error["code"] == "cancelled"
    assert statuses(run) == {"wait": "cancelled", "after": "cancelled"}
    assert RunEvent.objects.filter(run=run, type="run_cancelled").count() == 1
    with pytest.raises(Conflict):
        lifecycle.cancel(run)


def test_replay_from_a_step_reuses_what_does_not_depend_on_it(make_flow):
    flow = make_flow(
        [
            transform("a", "{{ run.id }}"),
            transform("b", "{{ run.id }}"),
            transform("c", "{{ steps.a.output }}/{{ steps.b.output }}"),
        ],
        [edge("a", "b"), edge("b", "c")],
    )
    first = run_to_rest(flow)
    second = lifecycle.replay(first, from_step="b")
    drain()
    second.refresh_from_db()
    assert second.replays_run_id == first.pk
    assert second.status == "succeeded"
    assert second.output == f"{first.pk}/{second.pk}"


def test_replay_of_a_missing_step_is_refused(make_flow):
    run = run_to_rest(make_flow([transform("a", 1)]))
    with pytest.raises(InvalidRequest) as refused:
        lifecycle.replay(run, from_step="zzz")
    assert refused.value.code == "validation_error"


def test_max_concurrent_runs_queues_the_extra_runs(make_flow):
    flow = make_flow(
        [{"id": "wait", "type": "delay", "config": {"seconds": 600}}],
        settings={"max_concurrent_runs": 1},
    )
    first = run_to_rest(flow)
    second = run_to_rest(flow)
    assert (first.status, second.status) == ("running", "queued")
    skip_waits()
    drain()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "succeeded"
    assert second.status == "running"


def test_firing_a_draft_is_refused(org):
    draft = create_orchestration(org, {"name": "D", "definition": {"nodes": [transform("a", 1)]}})
    with pytest.raises(OrchestrationNotActive):
        lifecycle.fire(draft, {})


def test_input_is_checked_against_the_declared_inputs(make_flow):
    flow = make_flow(
        [transform("a", 1)], inputs=[{"name": "n", "type": "integer", "required": True}]
    )
    with pytest.raises(TriggerMismatch) as caught:
        lifecycle.fire(flow, {"n": "seven"})
    assert caught.value.fields == {"input.n": ["must be of type integer, not a string"]}


def test_the_same_idempotency_key_returns_the_same_run(make_flow):
    flow = make_flow([transform("a", 1)])
    first, created = lifecycle.fire(flow, {}, idempotency_key="k1")
    again, created_again = lifecycle.fire(flow, {}, idempotency_key="k1")
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk


def test_a_run_past_its_run_timeout_fails_with_timeout(make_flow):
    from django.utils import timezone

    from runs.services import timers

    flow = make_flow(
        [{"id": "wait", "type": "delay", "config": {"seconds": 600}}],
        settings={"run_timeout_s": 60},
    )
    run = run_to_rest(flow)
    assert run.deadline_at is not None
    Run.objects.filter(pk=run.pk).update(deadline_at=timezone.now())
    assert timers.reap()["timed_out"] == 1
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error["code"] == "timeout"
    assert statuses(run) == {"wait": "cancelled"}
