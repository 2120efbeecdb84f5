"""Workers SIGKILLed at random moments, the whole process group or a single pool child, while
runs of http steps post their side effects to a sink: no run is lost or stuck, each step succeeds
exactly once, and its call reaches the sink at least once and at most once per attempt, and is
applied once (every attempt carries the step's Idempotency-Key)."""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import pytest
from django.conf import settings
from django.utils import timezone

from orchestrator.services.orchestrations import create_orchestration
from runs.engine import RUN_TERMINAL, STEP_UNFINISHED
from runs.models import Run, RunEvent, StepRun
from runs.services import lifecycle, timers
from tests.fault.chaos import ChaosWorker, report, scale, unfinished, wait_for
from tests.fault.conftest import GRACE_S, LEASE_S, REAP_EVERY_S

pytestmark = pytest.mark.worker

RUNS = scale(30, 200)
KILLS = scale(4, 40)
SIDE_EFFECTS = ("a", "b", "c")
# After the last kill the lost step waits out its lease while the worker boots again; the
# reaper finds it within one interval; then the step and the rest of its run execute.
TAIL_S = 5.0
# Prefork on Redis; threads on the filesystem broker (config.settings says why).
POOL = getattr(settings, "CELERY_WORKER_POOL", "prefork")


def fan_out_and_in(sink) -> dict:
    """a, then b and c in parallel (three side effects), then a transform that joins them."""
    return {
        "nodes": [
            *(sink.step(node_id) for node_id in SIDE_EFFECTS),
            {
                "id": "join",
                "type": "transform",
                "config": {
                    "output": "{{ steps.b.output.body.call }}{{ steps.c.output.body.call }}"
                },
            },
        ],
        "edges": [
            {"source": "a", "target": "b"},
            {"source": "a", "target": "c"},
            {"source": "b", "target": "join"},
            {"source": "c", "target": "join"},
        ],
    }


def play_beat(seconds: float) -> None:
    """Sleep while calling the reaper every REAP_EVERY_S, as beat would."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        timers.reap()
        time.sleep(min(REAP_EVERY_S, max(end - time.monotonic(), 0)))


def ready_to_hurt(worker: ChaosWorker) -> bool:
    """A step is in flight (else a kill loses nothing), and a prefork pool is up."""
    return StepRun.objects.filter(status="running").exists() and (
        POOL != "prefork" or bool(worker.children())
    )


def wait_to_kill(ready, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready() and time.monotonic() < deadline:
        play_beat(0.2)


def test_runs_survive_workers_killed_at_random_moments(org, fault_env, sink):
    seed = int(os.environ.get("FAULT_SEED") or time.time())
    rng = random.Random(seed)
    flow = create_orchestration(
        org, {"name": "Fan", "status": "active", "definition": fan_out_and_in(sink)}
    )
    runs = Run.objects.filter(orchestration=flow)
    worker = ChaosWorker(fault_env, concurrency=2)
    worker.start()
    kills: Counter = Counter()
    started = time.monotonic()
    try:
        for kill in range(KILLS):
            if kill < KILLS - 1:
                # All but one run are fired in batches, each followed by a kill at a random moment.
                for _ in range((RUNS - 1) * (kill + 1) // (KILLS - 1) - runs.count()):
                    lifecycle.fire(flow, {})
                play_beat(rng.uniform(0.3, 2.5))
                wait_to_kill(lambda: ready_to_hurt(worker), timeout=15)
            else:
                # The last kill measures recovery, not a backlog: once the others are done, the
                # last run starts, and its first step's call is held at the sink until the kill.
                wait_for(
                    lambda: not runs.exclude(status__in=RUN_TERMINAL).exists(),
                    timeout=300,
                    reap_every=REAP_EVERY_S,
                    describe=lambda: unfinished(runs),
                )
                sink.release.clear()
                last, _ = lifecycle.fire(flow, {})
                wait_to_kill(
                    lambda: (str(last.pk), "a") in sink.calls and ready_to_hurt(worker),  # noqa: B023
                    timeout=60,
                )
            # Every other kill takes a single pool child, where there are children (prefork);
            # the last one takes them all, so that it surely takes the step in flight.
            if kill % 2 == 1 and worker.children():
                kills["pool_child"] += worker.kill_child(every=kill == KILLS - 1)
            else:
                worker.restart()
                kills["worker"] += 1
            last_kill, killed_at = time.monotonic(), timezone.now()
            sink.release.set()
        wait_for(
            lambda: not runs.exclude(status__in=RUN_TERMINAL).exists(),
            timeout=120,
            reap_every=REAP_EVERY_S,
            describe=lambda: unfinished(runs),
        )
        settle = time.monotonic() - last_kill
    finally:
        worker.stop()

    statuses = Counter(runs.values_list("status", flat=True))
    steps = StepRun.objects.filter(run__orchestration=flow)
    effects = steps.filter(node_id__in=SIDE_EFFECTS)
    attempts = Counter(effects.values_list("run_id", "node_id"))
    succeeded = Counter(steps.filter(status="succeeded").values_list("run_id", "node_id"))
    lost = list(steps.filter(error__code="worker_lost"))
    completes = Counter(
        RunEvent.objects.filter(run__orchestration=flow, type="step_complete").values_list(
            "run_id", "step_id"
        )
    )
    # How long each attempt lost with a worker waited, from its claim, for the next attempt.
    # A restarted worker first boots (Django, Celery: seconds, more on a busy machine): the
    # first claim after the last kill.
    first_claim = steps.filter(started_at__gt=killed_at).order_by("started_at").first()
    boot = (first_claim.started_at - killed_at).total_seconds() if first_claim else 0.0
    recovery = [
        (
            steps.get(run_id=step.run_id, node_id=step.node_id, attempt=step.attempt + 1).created_at
            - step.started_at
        ).total_seconds()
        for step in lost
    ]
    report(
        "killed workers",
        seed=seed,
        pool=POOL,
        runs=len(runs),
        kills=dict(kills),
        lost_attempts=len(lost),
        max_attempts=max(steps.values_list("attempt", flat=True)),
        max_requeue_s=round(max(recovery, default=0), 1),
        worker_boot_s=round(boot, 1),
        settle_after_last_kill_s=round(settle, 1),
        calls_beyond_successes=sum(sink.calls.values()) - len(attempts),
        applied_beyond_successes=sum(sink.applied.values()) - len(attempts),
        total_s=round(time.monotonic() - started, 1),
    )

    assert len(runs) == RUNS
    assert statuses == {"succeeded": RUNS}, statuses  # none lost, stuck or failed
    assert not steps.filter(status__in=STEP_UNFINISHED).exists()
    keys = {(run.pk, node_id) for run in runs for node_id in (*SIDE_EFFECTS, "join")}
    assert set(succeeded) == keys and set(succeeded.values()) == {1}
    assert set(completes) == keys and set(completes.values()) == {1}
    for run_id, node_id in attempts:
        # Sent once per attempt at most (an attempt killed mid-call had sent it too), and applied
        # exactly once: every attempt carries the step's Idempotency-Key.
        assert 1 <= sink.calls[(str(run_id), node_id)] <= attempts[(run_id, node_id)]
        assert sink.applied[(str(run_id), node_id)] == 1
    for run in runs:
        seqs = list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
        assert seqs == list(range(1, run.last_seq + 1))
    assert sum(kills.values()) == KILLS
    assert lost, "no kill caught a step in flight"
    # Each lost attempt was queued again within its lease and one reaper interval (plus the
    # reaper's own time on a busy machine), and the runs were done soon after the last kill:
    # once the lease ran out or the worker was back, whichever came later.
    assert max(recovery) <= LEASE_S + GRACE_S + REAP_EVERY_S + 1.5
    assert settle <= max(LEASE_S + GRACE_S + REAP_EVERY_S, boot) + TAIL_S
