"""A worker killed after claiming a step and before reporting anything about it (the step is
waiting on a slow server): the claim's lease runs out, the reaper records the lost attempt and
queues another, and that one succeeds. Every trial, not most of them."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings

from orchestrator.services.orchestrations import create_orchestration
from runs.engine import RUN_TERMINAL
from runs.models import Run, RunEvent, StepRun
from runs.services import lifecycle
from tests.fault.chaos import ChaosWorker, report, scale, unfinished, wait_for
from tests.fault.conftest import GRACE_S, LEASE_S, REAP_EVERY_S

pytestmark = pytest.mark.worker

TRIALS = scale(10, 50)
# Trials run side by side: one claim per worker slot, all lost to one kill.
AT_ONCE = 10
POOL = getattr(settings, "CELERY_WORKER_POOL", "prefork")


def test_a_step_claimed_by_a_worker_killed_before_it_reported_is_run_again(org, fault_env, sink):
    flow = create_orchestration(
        org,
        {
            "name": "Slow",
            "status": "active",
            "definition": {
                "nodes": [
                    sink.step("work", kind="slow"),
                    {"id": "after", "type": "transform", "config": {"output": "done"}},
                ],
                "edges": [{"source": "work", "target": "after"}],
            },
        },
    )
    worker = ChaosWorker(fault_env, concurrency=AT_ONCE)
    worker.start()
    kills = {"worker": 0, "pool_child": 0}
    to_success = []
    try:
        for round_ in range(TRIALS // AT_ONCE):
            sink.release.clear()
            batch = [lifecycle.fire(flow, {})[0] for _ in range(AT_ONCE)]
            claimed = StepRun.objects.filter(run__in=batch, status="running")
            wait_for(lambda: claimed.count() == AT_ONCE, timeout=120)  # noqa: B023
            # Every claim is in flight, its request held by the slow server: nothing reported.
            killed_at = time.monotonic()
            # Rounds alternate: the whole worker, or (prefork) each pool child.
            if round_ % 2 == 1 and POOL == "prefork":
                kills["pool_child"] += len(worker.children())
                worker.kill_child(every=True)
            else:
                worker.restart()
                kills["worker"] += 1
            sink.release.set()  # what comes after the kill answers at once
            runs = Run.objects.filter(pk__in=[run.pk for run in batch])
            wait_for(
                lambda: not runs.exclude(status__in=RUN_TERMINAL).exists(),  # noqa: B023
                timeout=120,
                reap_every=REAP_EVERY_S,
                describe=lambda: unfinished(runs),  # noqa: B023
            )
            to_success.append(time.monotonic() - killed_at)
    finally:
        worker.stop()

    runs = Run.objects.filter(orchestration=flow)
    work = StepRun.objects.filter(run__orchestration=flow, node_id="work")
    lost = work.filter(error__code="worker_lost")
    requeue = [
        (work.get(run_id=step.run_id, attempt=2).created_at - step.started_at).total_seconds()
        for step in lost
    ]
    succeeded = runs.filter(status="succeeded").count()
    report(
        "claim before heartbeat",
        pool=POOL,
        trials=len(runs),
        succeeded=f"{succeeded} of {len(runs)}",
        kills=kills,
        max_requeue_after_claim_s=round(max(requeue, default=0), 1),
        max_kill_to_success_s=round(max(to_success), 1),
    )

    assert succeeded == len(runs) == TRIALS
    for run in runs:
        attempts = list(work.filter(run=run).order_by("attempt"))
        assert [(s.attempt, s.status) for s in attempts] == [(1, "failed"), (2, "succeeded")]
        first = attempts[0]
        assert first.error["code"] == "worker_lost"
        # The lease was the one taken at the claim: nothing extended it.
        assert first.lease_expires_at - first.started_at == timedelta(seconds=LEASE_S + GRACE_S)
        # The second call worked; the first was cut off, or the kill came before it was made.
        assert sink.calls[(str(run.pk), "work")] in (1, 2)
        assert sink.applied[(str(run.pk), "work")] == 1  # both attempts sent one key
        assert run.output == "done"
        types = list(RunEvent.objects.filter(run=run).values_list("type", flat=True))
        assert types.count("step_retry") == 1
        assert types.count("step_complete") == 2  # work (attempt 2) and after
    assert max(requeue) <= LEASE_S + GRACE_S + REAP_EVERY_S + 1.5
