"""Hypothesis drives small orchestrations through the services in any order: completions,
failures, retries after backoff, workers that claim and die, late results from them, duplicate
deliveries, cancels, replays, approvals and denials, expiries, the reaper. After every step:

- nothing leaves a terminal state (statuses of every run and step attempt, recorded over time);
- a step attempt ends at most once (one step_complete, step_failed or step_retry per attempt);
- a run that ended has no step pending, running or waiting, and asks no question any more;
- a node has at most one open attempt and at most one success; event seqs have no gap.

And at the end, once every outstanding thing is answered, every run has ended: none is stuck.
In-process, drain-style (like tests/runs/harness.py): the rows are the queue."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from unittest.mock import patch

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from approvals import services as approvals
from approvals.models import Approval
from core.domain_errors import Conflict
from orchestrator.services.orchestrations import create_orchestration
from runs.engine import RUN_TERMINAL, RUN_TRANSITIONS, STEP_TERMINAL, STEP_TRANSITIONS
from runs.engine.nodes.base import StepFailed, StepResult
from runs.models import Run, RunEvent, StepRun
from runs.services import execution, lifecycle, timers
from tests.fault.chaos import report, scale

pytestmark = pytest.mark.django_db

EXAMPLES = scale(30, 300)
STEPS_PER_EXAMPLE = scale(30, 60)
OPEN = ("pending", "running", "waiting")
ENDINGS = ("step_complete", "step_failed", "step_retry")
SEEN: Counter = Counter()


def http(node_id: str, **extra) -> dict:
    return {"id": node_id, "type": "http", "config": {"url": "http://127.0.0.1:9/"}, **extra}


def gate(node_id: str, on_deny: str = "fail") -> dict:
    return {"id": node_id, "type": "approval", "config": {"prompt": "ok?", "on_deny": on_deny}}


def transform(node_id: str, output: str) -> dict:
    return {"id": node_id, "type": "transform", "config": {"output": output}}


FLOWS = {
    "chain": (
        [http("a", retry={"max_attempts": 2, "backoff_s": 5}), http("b"), transform("t", "x")],
        [("a", "b"), ("b", "t")],
    ),
    "gate": ([http("a"), gate("g"), http("b")], [("a", "g"), ("g", "b")]),
    "fan": (
        [
            http("a", retry={"max_attempts": 3, "backoff_s": 1}),
            http("b", on_error="continue"),
            transform("j", "{{ steps.a.status }} {{ steps.b.status }}"),
        ],
        [("a", "j"), ("b", "j")],
    ),
    "soft_gate": (
        [gate("g", on_deny="continue"), transform("t", "{{ steps.g.output }}")],
        [("g", "t")],
    ),
}

# The executor of http nodes, for this test: it does what the rule that called it says.
OUTCOME = {"next": "ok"}
# The services' clock: one second per step of the machine, so that an example replays exactly
# (a backoff due by the wall clock would make the choices of a replay differ).
START = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
CLOCK = {"now": START}


def scripted_http(ctx) -> StepResult:
    if OUTCOME["next"] == "ok":
        return StepResult(output={"status": 200, "body": {"attempt": ctx.attempt}})
    raise StepFailed("HTTP 503", retryable=OUTCOME["next"] == "retryable")


def reachable(table: dict, old: str, new: str) -> bool:
    """Whether `new` can follow `old` through the transition table (one change of the services
    may take several transitions, like pending -> running -> succeeded)."""
    seen, frontier = {old}, [old]
    while frontier:
        for nxt in table[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return new in seen


class Orchestrations(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Each example runs in a savepoint of the test's transaction, rolled back at the end.
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.runs: list = []  # run ids in the order they were created: draws replay exactly
        self.zombies: list[StepRun] = []  # claimed by a worker that then died
        self.step_history: dict = {}
        self.run_history: dict = {}
        CLOCK["now"] = START

    @initialize()
    def flows(self) -> None:
        self.user = get_user_model().objects.create(username="decider")
        from orchestrator.models import Organization

        org = Organization.objects.create(name="Chaos", slug="chaos")
        self.flows_by_name = {
            name: create_orchestration(
                org,
                {
                    "name": name,
                    "status": "active",
                    "definition": {
                        "nodes": nodes,
                        "edges": [{"source": s, "target": t} for s, t in edges],
                    },
                },
            )
            for name, (nodes, edges) in FLOWS.items()
        }

    def teardown(self) -> None:
        try:
            self.settle()
        finally:
            transaction.set_rollback(True)
            self.atomic.__exit__(None, None, None)

    # --- choosing among what exists ---------------------------------------------------------

    def ordered_steps(self, queryset) -> list[StepRun]:
        order = {run_id: i for i, run_id in enumerate(self.runs)}
        return sorted(queryset, key=lambda s: (order[s.run_id], s.node_id, s.attempt))

    def due_steps(self) -> list[StepRun]:
        now = timezone.now()
        return [
            s
            for s in self.ordered_steps(StepRun.objects.filter(node_type="http", status="pending"))
            if s.wake_at is None or s.wake_at <= now
        ]

    def pending_approvals(self) -> list[Approval]:
        order = {run_id: i for i, run_id in enumerate(self.runs)}
        return sorted(
            Approval.objects.filter(status="pending"), key=lambda a: (order[a.run_id], a.step_id)
        )

    def execute(self, step: StepRun, outcome: str) -> None:
        OUTCOME["next"] = outcome
        execution.execute(step.pk)

    # --- rules --------------------------------------------------------------------------------

    @rule(flow=st.sampled_from(sorted(FLOWS)), picked_up=st.sampled_from([True, True, False]))
    def start(self, flow, picked_up) -> None:
        run, _ = lifecycle.fire(self.flows_by_name[flow], {})
        self.runs.append(run.pk)
        if picked_up:  # else it waits in the queue for deliver_advance
            lifecycle.advance(run.pk)
        SEEN["start"] += 1

    @precondition(lambda self: Run.objects.filter(status="queued").exists())
    @rule(data=st.data(), twice=st.booleans())
    def deliver_advance(self, data, twice) -> None:
        queued = [pk for pk in self.runs if Run.objects.filter(pk=pk, status="queued").exists()]
        run_id = data.draw(st.sampled_from(queued))
        for _ in range(2 if twice else 1):
            lifecycle.advance(run_id)

    @precondition(lambda self: bool(self.due_steps()))
    @rule(data=st.data(), outcome=st.sampled_from(["ok", "ok", "retryable", "fatal"]))
    def deliver_step(self, data, outcome) -> None:
        step = data.draw(st.sampled_from(self.due_steps()))
        self.execute(step, outcome)
        SEEN[f"deliver {outcome}"] += 1

    @precondition(lambda self: StepRun.objects.filter(node_type="http").exists())
    @rule(data=st.data())
    def deliver_again(self, data) -> None:
        """A duplicate of any step message, whatever became of the step since."""
        step = data.draw(
            st.sampled_from(self.ordered_steps(StepRun.objects.filter(node_type="http")))
        )
        before = StepRun.objects.get(pk=step.pk).status
        self.execute(step, "ok")
        if before != "pending":
            assert StepRun.objects.get(pk=step.pk).status == before
            SEEN["duplicate ignored"] += 1

    @precondition(lambda self: bool(self.due_steps()))
    @rule(data=st.data())
    def claim_and_die(self, data) -> None:
        step = data.draw(st.sampled_from(self.due_steps()))
        claimed = execution.claim(step.pk)
        if claimed is not None:
            self.zombies.append(claimed)
            SEEN["claimed, worker died"] += 1

    @precondition(lambda self: StepRun.objects.filter(status="running").exists())
    @rule()
    def leases_run_out(self) -> None:
        StepRun.objects.filter(status="running").update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        SEEN["leases expired"] += timers.reap()["expired"]

    @precondition(lambda self: bool(self.zombies))
    @rule(data=st.data(), ok=st.booleans())
    def late_result(self, data, ok) -> None:
        """The 'dead' worker was only slow: its result arrives now."""
        step = self.zombies.pop(data.draw(st.integers(0, len(self.zombies) - 1)))
        was_running = StepRun.objects.get(pk=step.pk).status == "running"
        if ok:
            execution._record(step, result=StepResult(output={"status": 200, "late": True}))
        else:
            execution._record(step, failure=StepFailed("late failure", retryable=True))
        if not was_running:
            SEEN["late result dropped"] += 1

    @rule()
    def backoff_passes(self) -> None:
        past = timezone.now() - timedelta(seconds=1)
        StepRun.objects.filter(status="pending", wake_at__isnull=False).update(wake_at=past)

    @rule()
    def reap(self) -> None:
        timers.reap()

    @precondition(lambda self: bool(self.runs))
    @rule(data=st.data())
    def cancel(self, data) -> None:
        run = Run.objects.get(pk=data.draw(st.sampled_from(self.runs)))
        try:
            lifecycle.cancel(run)
        except Conflict:
            assert run.status in RUN_TERMINAL
            SEEN["cancel refused (ended)"] += 1
        else:
            SEEN["cancel"] += 1

    @precondition(lambda self: bool(self.runs))
    @rule(data=st.data(), from_first=st.booleans())
    def replay(self, data, from_first) -> None:
        run = Run.objects.get(pk=data.draw(st.sampled_from(self.runs)))
        nodes = [n["id"] for n in run.orchestration.definition["nodes"]]
        new = lifecycle.replay(run, from_step=None if from_first else nodes[-1])
        self.runs.append(new.pk)
        SEEN["replay"] += 1

    @precondition(lambda self: bool(self.pending_approvals()))
    @rule(data=st.data(), approve=st.booleans())
    def decide(self, data, approve) -> None:
        approval = data.draw(st.sampled_from(self.pending_approvals()))
        approvals.decide(approval.pk, approve=approve, user=self.user)
        SEEN["approve" if approve else "deny"] += 1

    @precondition(lambda self: Approval.objects.exists())
    @rule(data=st.data(), approve=st.booleans())
    def decide_again(self, data, approve) -> None:
        """A second click, or a decision on a question that is no longer asked."""
        order = {run_id: i for i, run_id in enumerate(self.runs)}
        choices = sorted(Approval.objects.all(), key=lambda a: (order[a.run_id], a.step_id))
        approval = data.draw(st.sampled_from(choices))
        if approval.status == "pending":
            approvals.decide(approval.pk, approve=approve, user=self.user)
        with pytest.raises(Conflict):
            approvals.decide(approval.pk, approve=not approve, user=self.user)
        SEEN["second decision refused"] += 1

    @precondition(lambda self: bool(self.pending_approvals()))
    @rule(data=st.data())
    def approval_times_out(self, data) -> None:
        approval = data.draw(st.sampled_from(self.pending_approvals()))
        Approval.objects.filter(pk=approval.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        timers.reap()
        SEEN["approval expired"] += 1

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def a_second_passes(self) -> None:
        CLOCK["now"] += timedelta(seconds=1)

    @invariant()
    def nothing_leaves_a_terminal_state(self) -> None:
        for pk, status in StepRun.objects.values_list("pk", "status"):
            history = self.step_history.setdefault(pk, [status])
            if history[-1] != status:
                assert history[-1] not in STEP_TERMINAL, (history, status)
                assert reachable(STEP_TRANSITIONS, history[-1], status), (history, status)
                history.append(status)
                SEEN[f"step {history[-2]} -> {status}"] += 1
        for pk, status in Run.objects.values_list("pk", "status"):
            history = self.run_history.setdefault(pk, [status])
            if history[-1] != status:
                assert history[-1] not in RUN_TERMINAL, (history, status)
                assert reachable(RUN_TRANSITIONS, history[-1], status), (history, status)
                history.append(status)

    @invariant()
    def an_attempt_ends_at_most_once(self) -> None:
        endings = Counter(
            (run_id, step_id, data.get("attempt"))
            for run_id, step_id, data in RunEvent.objects.filter(type__in=ENDINGS).values_list(
                "run_id", "step_id", "data"
            )
        )
        assert not [key for key, n in endings.items() if n > 1], endings
        completes = Counter(
            RunEvent.objects.filter(type="step_complete").values_list("run_id", "step_id")
        )
        assert not [key for key, n in completes.items() if n > 1], completes

    @invariant()
    def an_ended_run_has_nothing_open(self) -> None:
        ended = Run.objects.filter(status__in=RUN_TERMINAL)
        assert not StepRun.objects.filter(run__in=ended, status__in=OPEN).exists()
        assert not Approval.objects.filter(run__in=ended, status="pending").exists()

    @invariant()
    def one_open_attempt_and_one_success_per_node(self) -> None:
        open_ = Counter(StepRun.objects.filter(status__in=OPEN).values_list("run_id", "node_id"))
        assert max(open_.values(), default=0) <= 1, open_
        won = Counter(StepRun.objects.filter(status="succeeded").values_list("run_id", "node_id"))
        assert max(won.values(), default=0) <= 1, won

    @invariant()
    def events_have_no_gap(self) -> None:
        for run in Run.objects.all():
            seqs = list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
            assert seqs == list(range(1, run.last_seq + 1))

    # --- the end ------------------------------------------------------------------------------

    def settle(self) -> None:
        """Answer everything still outstanding, as workers, people and the reaper would."""
        for _ in range(40):
            if not Run.objects.exclude(status__in=RUN_TERMINAL).exists():
                return
            for run_id in Run.objects.filter(status="queued").values_list("pk", flat=True):
                lifecycle.advance(run_id)
            self.backoff_passes()
            for step in self.due_steps():
                self.execute(step, "ok")
            for approval in self.pending_approvals():
                approvals.decide(approval.pk, approve=True, user=self.user)
            StepRun.objects.filter(status="running").update(
                lease_expires_at=timezone.now() - timedelta(seconds=1)
            )
            timers.reap()
        stuck = [
            (run.status, run.cancel_requested, list(run.step_runs.values_list("node_id", "status")))
            for run in Run.objects.exclude(status__in=RUN_TERMINAL)
        ]
        assert not stuck, f"runs that never end: {stuck}"


def test_no_sequence_of_events_breaks_the_state_machine():
    SEEN.clear()
    with (
        patch.dict("runs.engine.nodes.EXECUTORS", {"http": scripted_http}),
        patch("django.utils.timezone.now", lambda: CLOCK["now"]),
    ):
        run_state_machine_as_test(
            Orchestrations,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS_PER_EXAMPLE,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    report(
        "state machine",
        examples=EXAMPLES,
        steps_per_example=STEPS_PER_EXAMPLE,
        seen=dict(sorted(SEEN.items())),
    )


@pytest.mark.parametrize("stop", ["cancel", "timeout"])
def test_a_run_stopped_while_its_worker_is_lost_ends_when_the_lease_runs_out(org, stop):
    """Found by the machine above: the reaper used to queue another attempt of the lost step,
    which a stopping run never claims, so the run stayed `running` for good."""
    nodes, edges = FLOWS["chain"]
    flow = create_orchestration(
        org,
        {
            "name": "Lost",
            "status": "active",
            "settings": {"run_timeout_s": 60},
            "definition": {
                "nodes": nodes,
                "edges": [{"source": s, "target": t} for s, t in edges],
            },
        },
    )
    run, _ = lifecycle.fire(flow, {})
    lifecycle.advance(run.pk)
    assert execution.claim(run.step_runs.get(node_id="a").pk) is not None  # then the worker dies
    if stop == "cancel":
        lifecycle.cancel(run)
    else:
        Run.objects.filter(pk=run.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
        timers.reap()
    assert Run.objects.get(pk=run.pk).status == "running"  # waiting for the step in progress
    StepRun.objects.filter(status="running").update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    timers.reap()
    run.refresh_from_db()
    assert (run.status, run.error["code"]) == (
        ("cancelled", "cancelled") if stop == "cancel" else ("failed", "timeout")
    )
    assert sorted(run.step_runs.values_list("node_id", "attempt", "status")) == [
        ("a", 1, "failed"),
        ("b", 1, "cancelled"),
        ("t", 1, "cancelled"),
    ]
    assert not StepRun.objects.filter(run=run, status__in=OPEN).exists()
