"""What a step that runs on a worker costs the database, pinned so that a regression fails.

A worker that records a step's outcome claims the next step in the same transaction and runs it
in the same task: a chain of worker steps takes one message, and each step after the first is a
run of its node plus one transaction (lock the run, read its steps, write the step, insert the
next one and the events, update the run). A fan-out's pending siblings are claimed the same way;
their own messages, delivered later, find nothing to claim and stop at one read.
"""

from __future__ import annotations

import itertools
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs.engine import StepStatus
from runs.engine.nodes import agent as agent_node
from runs.models import Run, RunEvent, StepRun
from runs.services import execution, lifecycle
from tests.runs.conftest import transform

pytestmark = pytest.mark.django_db

CHAIN = 6
# Per chained echo step: SAVEPOINT, lock the run, read its steps, write the step (its transcript
# with it: the agent's one model call is recorded in this transaction, with its `agent_turn`
# event), insert the next step (its input rendered with it), insert the events, update the run,
# RELEASE. A step claimed from its message adds two: writing its input, and its context's read of
# the steps; the first step adds its claim. A fan-out's pending sibling claimed by the record
# gets its input with the claim; it adds the claim and a read of its transcript (a pending step
# may be a retry that goes on from one). It was 25 on PostgreSQL before a worker went on to the
# next step itself (a claim transaction per step, three transactions a step), then 17 while the
# last model call was recorded in a transaction of its own, then 11 while a handed-on step
# rendered and wrote its input itself.
STATEMENTS_PER_STEP = 9
NOT_HANDED_ON = 2
CLAIM = 6


def echo(node_id: str) -> dict:
    return {
        "id": node_id,
        "type": "agent",
        "config": {"agent": {"model": "builtin/echo"}, "prompt": f"step {node_id}"},
    }


def chained(ids: list[str]) -> list[dict]:
    """The edges of a chain through `ids`, in order."""
    return [{"source": a, "target": b} for a, b in itertools.pairwise(ids)]


def rows_loaded(monkeypatch) -> list:
    """A list that gains an item for each step row built from the database from now on."""
    loaded: list = []
    from_db = StepRun.from_db.__func__
    monkeypatch.setattr(
        StepRun,
        "from_db",
        classmethod(lambda cls, *args: loaded.append(1) or from_db(cls, *args)),
    )
    return loaded


def started(orchestration) -> Run:
    run, _ = lifecycle.fire(orchestration, {})
    lifecycle.advance(run.pk)
    return run


def pending(run: Run) -> list:
    return list(
        StepRun.objects.filter(run=run, status=StepStatus.PENDING)
        .order_by("node_id")
        .values_list("pk", flat=True)
    )


def executed_with_inputs_seen(first) -> dict:
    """Executes the task of step `first`; the input each step's row held as its node began."""
    inputs_at_start = {}
    run_node = execution._run_node

    def watch(run, step, node, seen, rendered=None):
        inputs_at_start[step.node_id] = StepRun.objects.get(pk=step.pk).input
        return run_node(run, step, node, seen, rendered)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(execution, "_run_node", watch)
        execution.execute(first)
    return inputs_at_start


@pytest.fixture
def no_time_limit(monkeypatch):
    """However slow the machine, the task goes on: these tests count statements, not time."""
    monkeypatch.setattr(execution, "CONTINUE_FOR_S", 3600.0)


def test_a_chain_of_worker_steps_runs_on_one_message_at_a_bounded_cost(make_flow, no_time_limit):
    ids = [f"s{index}" for index in range(CHAIN)]
    flow = make_flow(
        [echo(node_id) for node_id in ids],
        chained(ids),
    )
    run = started(flow)
    [first] = pending(run)

    with CaptureQueriesContext(connection) as queries:
        execution.execute(first)

    run.refresh_from_db()
    assert run.status == "succeeded"
    assert StepRun.objects.filter(run=run, status="succeeded").count() == CHAIN
    bound = CLAIM + NOT_HANDED_ON + CHAIN * STATEMENTS_PER_STEP
    assert len(queries) <= bound, [q["sql"] for q in queries]
    # Each step still starts and ends in the trace, in order, with no gap in the seqs.
    kinds = list(RunEvent.objects.filter(run=run).values_list("type", "step_id"))
    for node_id in ids:
        assert kinds.index(("step_start", node_id)) < kinds.index(("step_complete", node_id))
    seqs = list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, run.last_seq + 1))


def test_a_fan_out_claims_its_pending_siblings_and_their_late_messages_do_nothing(
    make_flow, no_time_limit
):
    branches = ["b0", "b1", "b2"]
    flow = make_flow(
        [transform("start", "go"), *map(echo, branches), transform("join", "done")],
        [{"source": "start", "target": b} for b in branches]
        + [{"source": b, "target": "join"} for b in branches],
    )
    run = started(flow)
    first, *siblings = pending(run)

    with CaptureQueriesContext(connection) as queries:
        execution.execute(first)
    run.refresh_from_db()
    assert run.status == "succeeded"
    # Only the first sibling renders and writes its own input (35 statements; 39 while each
    # sibling claimed in a record did).
    assert len(queries) <= CLAIM + NOT_HANDED_ON + len(branches) * (STATEMENTS_PER_STEP + 1)

    for late in siblings:  # their messages arrive after the worker ran them
        with CaptureQueriesContext(connection) as queries:
            execution.execute(late)
        assert len(queries) == 1
    assert StepRun.objects.filter(run=run).count() == len(branches) + 2
    starts = RunEvent.objects.filter(run=run, type="step_start").values_list("step_id", flat=True)
    assert sorted(starts) == sorted(["start", *branches, "join"])


def test_a_handed_on_step_holds_its_input_from_the_start_and_a_bad_template_still_fails_it(
    make_flow, no_time_limit
):
    """The record that hands a step on renders its input with it: the step's row holds its
    prompt before the node runs. A template that cannot render fails that step as before."""
    bad = {**echo("c"), "config": {"agent": {"model": "builtin/echo"}, "prompt": "{{ range }}"}}
    flow = make_flow(
        [echo("a"), echo("b"), bad],
        [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}],
    )
    run = started(flow)
    [first] = pending(run)
    inputs_at_start = executed_with_inputs_seen(first)

    run.refresh_from_db()
    assert inputs_at_start["a"] is None  # claimed from its message: rendered by its worker
    assert inputs_at_start["b"]["prompt"] == "step b"
    assert inputs_at_start["c"] is None
    steps = {step.node_id: step for step in StepRun.objects.filter(run=run)}
    assert steps["b"].output == "step b" and steps["b"].input["prompt"] == "step b"
    assert run.status == "failed" and steps["c"].status == "failed"
    assert steps["c"].error["message"].startswith("template error")


def test_a_sibling_claimed_in_a_record_holds_its_input_from_the_start(make_flow, no_time_limit):
    """A fan-out's pending sibling that a record claims gets its input rendered with the claim,
    on the run as that record leaves it; a template that cannot render fails that sibling, and
    only it, when its worker renders it again."""
    quoting = {
        **echo("b1"),
        "config": {
            "agent": {"model": "builtin/echo"},
            "prompt": "b1 after {{ steps.start.output }}",
        },
    }
    bad = {**echo("b2"), "config": {"agent": {"model": "builtin/echo"}, "prompt": "{{ range }}"}}
    flow = make_flow(
        [transform("start", "go"), echo("b0"), quoting, bad],
        [{"source": "start", "target": b} for b in ("b0", "b1", "b2")],
    )
    run = started(flow)
    first = StepRun.objects.get(run=run, node_id="b0").pk
    inputs_at_start = executed_with_inputs_seen(first)

    assert inputs_at_start["b0"] is None  # claimed from its message: rendered by its worker
    assert inputs_at_start["b1"]["prompt"] == "b1 after go"
    assert inputs_at_start["b2"] is None
    steps = {step.node_id: step for step in StepRun.objects.filter(run=run)}
    assert steps["b1"].output == "b1 after go"
    assert steps["b2"].status == "failed"
    assert steps["b2"].error["message"].startswith("template error")


def test_a_task_past_its_time_hands_the_next_step_to_the_broker(make_flow, monkeypatch):
    """So that a long chain lets the runs queued behind it take their turn."""
    monkeypatch.setattr(execution, "CONTINUE_FOR_S", 0.0)
    flow = make_flow([echo("a"), echo("b")], [{"source": "a", "target": "b"}])
    run = started(flow)
    [first] = pending(run)

    execution.execute(first)

    steps = dict(StepRun.objects.filter(run=run).values_list("node_id", "status"))
    assert steps == {"a": "succeeded", "b": "pending"}
    [second] = pending(run)
    execution.execute(second)
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_a_chained_step_reads_only_the_rows_that_changed_for_its_template_context(
    make_flow, no_time_limit, monkeypatch
):
    """The transaction that hands a step on read every step of the run under the lock: the
    next step's template context reads again only the steps it changed (the last one and the
    next one), so a chain's k-th step reads k rows once, not twice. The context is the same:
    each prompt quotes the step before it."""
    ids = [f"s{index}" for index in range(CHAIN)]
    nodes = [echo(ids[0])] + [
        {
            "id": node_id,
            "type": "agent",
            "config": {
                "agent": {"model": "builtin/echo"},
                "prompt": f"{node_id} after {{{{ steps.{before}.output }}}}",
            },
        }
        for before, node_id in itertools.pairwise(ids)
    ]
    flow = make_flow(nodes, chained(ids))
    run = started(flow)
    [first] = pending(run)
    loaded = rows_loaded(monkeypatch)

    execution.execute(first)

    run.refresh_from_db()
    assert run.status == "succeeded"
    outputs = dict(StepRun.objects.filter(run=run).values_list("node_id", "output"))
    expected = f"step {ids[0]}"
    for node_id in ids[1:]:
        expected = f"{node_id} after {expected}"
        assert outputs[node_id] == expected
    # The claim reads the first step; under the lock, step k's record reads the k steps there
    # are; the first step's context reads its one row, each next step's its two changed ones
    # (33 rows here; reading every step again for each context made it 43).
    under_lock = CHAIN * (CHAIN + 1) // 2
    assert len(loaded) <= 1 + under_lock + 1 + 2 * (CHAIN - 1)


def test_the_agent_steps_of_one_task_share_one_event_loop_thread(
    make_flow, no_time_limit, monkeypatch
):
    """An agent step runs its conversation on an event loop in another thread: the steps a task
    goes on with reuse that thread instead of starting one each (a thread's start, and each
    hand-over to it, waits for a core on a busy machine)."""
    ids = [f"s{index}" for index in range(CHAIN)]
    flow = make_flow(
        [echo(node_id) for node_id in ids],
        chained(ids),
    )
    run = started(flow)
    [first] = pending(run)
    threads = []
    converse = agent_node._converse

    async def watched(*args):
        threads.append(threading.current_thread().name)
        return await converse(*args)

    monkeypatch.setattr(agent_node, "_converse", watched)

    execution.execute(first)

    run.refresh_from_db()
    assert run.status == "succeeded"
    assert len(threads) == CHAIN
    assert len(set(threads)) == 1, threads


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="rows are told apart by version on PostgreSQL"
)
def test_a_record_under_the_lock_reads_only_the_rows_that_moved(
    make_flow, no_time_limit, monkeypatch
):
    """On PostgreSQL a record reuses the steps its task read before whose rows are unchanged
    (same xmin and ctid) and reads the others: a chain's records read a few rows each, not
    every step of the run, so the rows read grow with the chain, not with its square."""
    ids = [f"s{index}" for index in range(12)]
    flow = make_flow(list(map(echo, ids)), chained(ids))
    run = started(flow)
    [first] = pending(run)
    loaded = rows_loaded(monkeypatch)

    execution.execute(first)

    run.refresh_from_db()
    assert run.status == "succeeded"
    # Each step: its context reads the step before and itself, its record those two again
    # (both were written since) and nothing else. Reading every step under the lock was 78 rows.
    assert len(loaded) <= 2 + 4 * len(ids)


def test_a_row_another_worker_changed_since_the_task_read_it_is_read_again(
    make_flow, no_time_limit, monkeypatch
):
    """A fan-out's sibling that another worker finished while this step ran is seen as finished
    by this step's record, so the join starts: the reused rows are only those unchanged."""
    flow = make_flow(
        [transform("start", "go"), echo("x"), echo("y"), transform("join", "joined")],
        [
            {"source": "start", "target": "x"},
            {"source": "start", "target": "y"},
            {"source": "x", "target": "join"},
            {"source": "y", "target": "join"},
        ],
    )
    run = started(flow)
    x = StepRun.objects.get(run=run, node_id="x")
    run_node = execution._run_node

    def elsewhere_y_ends(run, step, node, seen, rendered=None):
        # While x runs, y is taken and finished by another worker (as its record would leave it).
        assert seen["y"].status == StepStatus.PENDING
        now = timezone.now()
        StepRun.objects.filter(run=run, node_id="y").update(
            status=StepStatus.SUCCEEDED, output="step y", started_at=now, finished_at=now
        )
        return run_node(run, step, node, seen, rendered)

    monkeypatch.setattr(execution, "_run_node", elsewhere_y_ends)
    execution.execute(x.pk)

    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert dict(StepRun.objects.filter(run=run).values_list("node_id", "status")) == {
        "start": "succeeded",
        "x": "succeeded",
        "y": "succeeded",
        "join": "succeeded",
    }
