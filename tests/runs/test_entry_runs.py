"""Runs that start at an entry step (their trigger's `node_id`): skips, joins, replays, cost."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.domain_errors import Conflict, InvalidRequest
from orchestrator.services.orchestrations import update_orchestration
from runs.models import Run
from runs.services import lifecycle
from tests.runs.conftest import edge, transform
from tests.runs.harness import drain, run_to_rest, statuses

pytestmark = pytest.mark.django_db


def entry_flow(make_flow, nodes, edges, node_id, **fields):
    flow = make_flow(nodes, edges, triggers=[{"kind": "webhook", "node_id": node_id}], **fields)
    return flow, flow.triggers.get()


def fire_at(flow, trigger, data=None) -> Run:
    return run_to_rest(
        flow,
        data or {},
        trigger_kind="webhook",
        trigger_ref=trigger.pk,
        entry_node=trigger.node_id,
    )


def chain(make_flow, entry: str):
    """a -> b -> c -> d; each output names the run that computed it."""
    return entry_flow(
        make_flow,
        [transform(n, f"{n}:{{{{ run.id }}}}") for n in "abcd"],
        [edge("a", "b"), edge("b", "c"), edge("c", "d")],
        entry,
        output="{{ steps.b.output }} {{ steps.c.output }} {{ steps.d.output }}",
    )


def test_a_join_after_the_entry_runs_with_the_branch_it_skipped_as_not_taken(make_flow):
    # start -> left -> join, start -> right -> join, extra -> right; entered at left.
    flow, trigger = entry_flow(
        make_flow,
        [
            transform("start", "s"),
            transform("extra", "x"),
            transform("left", "L"),
            transform("right", "R"),
            transform("join", "{{ steps.left.output }}+{{ steps.right.status }}"),
        ],
        [
            edge("start", "left"),
            edge("start", "right"),
            edge("extra", "right"),
            edge("left", "join"),
            edge("right", "join"),
        ],
        "left",
        output="{{ steps.join.output }}",
    )
    run = fire_at(flow, trigger)
    assert run.status == "succeeded", run.error
    assert run.output == "L+skipped"
    assert statuses(run) == {
        "start": "skipped",
        "extra": "skipped",
        "left": "succeeded",
        "right": "skipped",
        "join": "succeeded",
    }
    assert (run.steps_completed, run.steps_total) == (5, 5)


def test_a_condition_after_the_entry_routes_as_usual(make_flow):
    flow, trigger = entry_flow(
        make_flow,
        [transform("a", "x"), transform("b", "{{ input.go }}"), transform("c", "ran")],
        [edge("a", "b"), edge("b", "c", "output == 'yes'")],
        "b",
        inputs=[{"name": "go", "type": "string"}],
    )
    assert statuses(fire_at(flow, trigger, {"go": "yes"}))["c"] == "succeeded"
    assert statuses(fire_at(flow, trigger, {"go": "no"})) == {
        "a": "skipped",
        "b": "succeeded",
        "c": "skipped",
    }


def test_a_failure_after_the_entry_fails_the_run_naming_the_step(make_flow):
    flow, trigger = entry_flow(
        make_flow,
        [transform("a", 1), transform("b", "{{ steps.nope.output }}"), transform("c", 3)],
        [edge("a", "b"), edge("b", "c")],
        "b",
    )
    run = fire_at(flow, trigger)
    assert run.status == "failed"
    assert run.error["step_id"] == "b"
    assert statuses(run) == {"a": "skipped", "b": "failed", "c": "cancelled"}


def test_a_replay_starts_at_the_same_entry(make_flow, editor):
    flow, trigger = chain(make_flow, "b")
    first = fire_at(flow, trigger)
    assert statuses(first) == {"a": "skipped", "b": "succeeded", "c": "succeeded", "d": "succeeded"}
    response = editor.post(f"/api/v1/runs/{first.pk}/replay", {}, format="json")
    assert response.status_code == 202, response.json()
    assert response.json()["entry_step"] == "b"
    drain()
    second = Run.objects.get(pk=response.json()["id"])
    assert (second.trigger_kind, second.replays_run_id, second.entry_step) == (
        "replay",
        first.pk,
        "b",
    )
    assert statuses(second) == statuses(first)
    assert second.output == f"b:{second.pk} c:{second.pk} d:{second.pk}"


def test_a_replay_from_a_step_after_the_entry_reuses_the_steps_before_it(make_flow):
    flow, trigger = chain(make_flow, "b")
    first = fire_at(flow, trigger)
    second = lifecycle.replay(first, from_step="c")
    drain()
    second.refresh_from_db()
    assert second.status == "succeeded", second.error
    assert second.entry_step == "b"
    assert statuses(second) == {
        "a": "skipped",
        "b": "succeeded",
        "c": "succeeded",
        "d": "succeeded",
    }
    assert second.output == f"b:{first.pk} c:{second.pk} d:{second.pk}"


def test_a_replay_from_a_step_the_entry_does_not_feed_is_refused(make_flow):
    flow, trigger = chain(make_flow, "b")
    run = fire_at(flow, trigger)
    with pytest.raises(InvalidRequest) as refused:
        lifecycle.replay(run, from_step="a")
    assert refused.value.fields == {"from_step": ["not 'b' or downstream of it"]}
    assert Run.objects.count() == 1


def test_a_replay_is_refused_when_the_current_version_dropped_the_entry(make_flow, editor):
    flow, trigger = chain(make_flow, "b")
    run = fire_at(flow, trigger)
    definition = {
        **flow.definition,
        "nodes": [n for n in flow.definition["nodes"] if n["id"] != "b"],
        "edges": [edge("a", "c"), edge("c", "d")],
    }
    update_orchestration(flow, {"definition": definition}, if_match=flow.etag, replace=False)
    with pytest.raises(Conflict, match="step 'b'"):
        lifecycle.replay(run)
    response = editor.post(f"/api/v1/runs/{run.pk}/replay", {}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert Run.objects.count() == 1


def test_a_fire_that_names_no_trigger_has_no_entry(make_flow):
    flow, _trigger = chain(make_flow, "b")
    run = run_to_rest(flow)
    assert run.entry_step == ""
    assert set(statuses(run).values()) == {"succeeded"}


def advance_queries(run: Run) -> int:
    with CaptureQueriesContext(connection) as captured:
        lifecycle.advance(run.pk)
    return len(captured)


def test_an_entry_costs_the_run_no_extra_query(make_flow):
    """Starting a run writes its steps and events in bulk, whichever entry it has."""
    flow, trigger = chain(make_flow, "a")
    warm_up, _ = lifecycle.fire(flow, {})
    lifecycle.advance(warm_up.pk)  # loads the version's graph into the process cache
    plain, _ = lifecycle.fire(flow, {})
    rooted, _ = lifecycle.fire(
        flow, {}, trigger_kind="webhook", trigger_ref=trigger.pk, entry_node=trigger.node_id
    )
    trigger.node_id = "c"
    trigger.save(update_fields=["node_id"])
    inner, _ = lifecycle.fire(
        flow, {}, trigger_kind="webhook", trigger_ref=trigger.pk, entry_node=trigger.node_id
    )
    assert (plain.entry_step, rooted.entry_step, inner.entry_step) == ("", "a", "c")
    counts = [advance_queries(run) for run in (plain, rooted, inner)]
    assert counts[0] == counts[1] == counts[2], counts
    for run in (plain, rooted, inner):
        run.refresh_from_db()
        assert run.status == "succeeded"
