"""Workers SIGKILLed at random moments, the whole process group or a single pool child, while
runs of four http steps post their side effects to a sink: no run is lost or stuck, each step
succeeds exactly once, and its side effect is applied at least once and at most once per attempt.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import pytest

from orchestrator.services.orchestrations import create_orchestration
from runs.engine import RUN_TERMINAL, STEP_UNFINISHED
from runs.models import Run, RunEvent, StepRun
from runs.services import lifecycle, timers
from tests.fault.chaos import ChaosWorker, report, scale, unfinished, wait_for
from tests.fault.conftest import GRACE_S, LEASE_S, REAP_EVERY_S, STALE_S

pytestmark = pytest.mark.worker

RUNS = scale(30, 200)
KILLS = scale(8, 40)
NODES = ("a", "b", "c", "d")
# After the last kill: a lost step waits for its lease (or a lost message for STALE_S), the
# reaper finds it within one interval, and what is left of the runs then has to execute.
WORK_AFTER_LAST_KILL_S = 20.0


def diamond(sink) -> dict:
    """a, then b and c in parallel, then d: every step an http POST into the sink."""
    return {
        "nodes": [sink.step(node_id) for node_id in NODES],
        "edges": [
            {"source": "a", "target": "b"},
            {"source": "a", "target": "c"},
            {"source": "b", "target": "d"},
            {"source": "c", "target": "d"},
        ],
    }


def play_beat(seconds: float) -> None:
    """Sleep while calling the reaper every REAP_EVERY_S, as beat would."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        timers.reap()
        time.sleep(min(REAP_EVERY_S, max(end - time.monotonic(), 0)))


def something_running() -> bool:
    return StepRun.objects.filter(status="running").exists()


def test_runs_survive_workers_killed_at_random_moments(org, fault_env, sink):
    seed = int(os.environ.get("FAULT_SEED") or time.time())
    rng = random.Random(seed)
    flow = create_orchestration(
        org, {"name": "Diamond", "status": "active", "definition": diamond(sink)}
    )
    worker = ChaosWorker(fault_env, concurrency=2)
    worker.start()
    kills: Counter = Counter()
    fired = 0
    started = time.monotonic()
    try:
        for kill in range(KILLS):
            batch = RUNS * (kill + 1) // KILLS - fired
            for _ in range(batch):
                lifecycle.fire(flow, {})
            fired += batch
            play_beat(rng.uniform(0.3, 2.5))
            # A kill while nothing runs loses nothing: wait (a little) for a step in flight.
            deadline = time.monotonic() + 5
            while not something_running() and time.monotonic() < deadline:
                play_beat(0.2)
            if kill % 2 == 0:
                worker.restart()
                kills["worker"] += 1
            elif worker.kill_child():
                kills["pool_child"] += 1
            last_kill = time.monotonic()
        runs = Run.objects.filter(orchestration=flow)
        wait_for(
            lambda: not runs.exclude(status__in=RUN_TERMINAL).exists(),
            timeout=LEASE_S + GRACE_S + STALE_S + REAP_EVERY_S + WORK_AFTER_LAST_KILL_S + 60,
            reap_every=REAP_EVERY_S,
            describe=lambda: unfinished(runs),
        )
        settle = time.monotonic() - last_kill
    finally:
        worker.stop()

    statuses = Counter(runs.values_list("status", flat=True))
    steps = StepRun.objects.filter(run__orchestration=flow)
    attempts = Counter(steps.values_list("run_id", "node_id"))
    succeeded = Counter(steps.filter(status="succeeded").values_list("run_id", "node_id"))
    lost_attempts = list(steps.filter(error__code="worker_lost"))
    sink_calls = Counter({(r, s): n for (r, s), n in sink.calls.items()})
    completes = Counter(
        RunEvent.objects.filter(run__orchestration=flow, type="step_complete").values_list(
            "run_id", "step_id"
        )
    )
    # How long each attempt lost with a worker waited before the reaper queued its next one.
    recovery = [
        (
            steps.get(run_id=lost.run_id, node_id=lost.node_id, attempt=lost.attempt + 1).created_at
            - lost.started_at
        ).total_seconds()
        for lost in lost_attempts
    ]
    report(
        "killed workers",
        seed=seed,
        runs=len(runs),
        kills=dict(kills),
        lost_attempts=len(lost_attempts),
        max_attempts=max(steps.values_list("attempt", flat=True)),
        max_recovery_s=round(max(recovery, default=0), 1),
        settle_after_last_kill_s=round(settle, 1),
        duplicate_side_effects=sum(sink_calls.values()) - len(succeeded),
        total_s=round(time.monotonic() - started, 1),
    )

    assert len(runs) == RUNS  # none lost
    assert statuses == {"succeeded": RUNS}, statuses  # none stuck, none failed
    assert not steps.filter(status__in=STEP_UNFINISHED).exists()
    keys = {(run.pk, node_id) for run in runs for node_id in NODES}
    assert set(succeeded) == keys and set(succeeded.values()) == {1}
    assert set(completes) == keys and set(completes.values()) == {1}
    for run_id, node_id in keys:
        # Applied at least once for its success, and never more often than it was attempted.
        assert 1 <= sink_calls[(str(run_id), node_id)] <= attempts[(run_id, node_id)]
    for run in runs:
        seqs = list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
        assert seqs == list(range(1, run.last_seq + 1))
    assert kills["worker"] + kills["pool_child"] == KILLS
    assert lost_attempts, "no kill caught a step in flight"
    assert max(recovery) <= LEASE_S + GRACE_S + REAP_EVERY_S + 1.5
    assert settle <= LEASE_S + GRACE_S + REAP_EVERY_S + WORK_AFTER_LAST_KILL_S
