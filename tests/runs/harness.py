"""Runs a run to rest in the test process, calling the tasks as functions (no worker, no broker).

`on_commit` callbacks never fire inside a test transaction, so instead of the broker this
looks at the rows, as a worker and the reaper would: queued runs, pending worker steps, due
timers, finished child runs.
"""

from __future__ import annotations

from django.utils import timezone

from orchestrator.definition.nodes import types_running_on
from orchestrator.models import Orchestration
from runs.engine import RUN_TERMINAL, StepStatus
from runs.models import Run, StepRun
from runs.services import execution, lifecycle, subflows, timers


def drain(rounds: int = 500) -> None:
    for _ in range(rounds):
        moved = False
        for run in Run.objects.filter(status="queued"):
            lifecycle.advance(run.pk)
            moved |= Run.objects.get(pk=run.pk).status != "queued"
        now = timezone.now()
        for step in StepRun.objects.filter(
            status=StepStatus.PENDING, node_type__in=types_running_on("worker")
        ):
            if step.wake_at is None or step.wake_at <= now:
                execution.execute(step.pk)
                moved = True
        for step in StepRun.objects.filter(
            status=StepStatus.WAITING, node_type="delay", wake_at__lte=now
        ):
            timers.fire_timer(step.pk)
            moved = True
        for step in StepRun.objects.filter(
            status=StepStatus.WAITING, node_type="subflow", child_run__status__in=RUN_TERMINAL
        ):
            timers.resume_parent_of(step.child_run_id)
            moved = True
        # The child runs of an agent's orchestration tool calls, whose step still waits.
        for child_id in subflows.ended_tool_call_children():
            timers.resume_parent_of(child_id)
            moved = True
        if not moved:
            return
    raise AssertionError("the runs did not come to rest")


def skip_waits() -> None:
    """Make every retry backoff and delay due now."""
    past = timezone.now() - timezone.timedelta(seconds=1)
    StepRun.objects.filter(status__in=["pending", "waiting"], wake_at__isnull=False).update(
        wake_at=past
    )


def run_to_rest(orchestration: Orchestration, data: dict | None = None, **kwargs) -> Run:
    run, _ = lifecycle.fire(orchestration, data or {}, **kwargs)
    drain()
    run.refresh_from_db()
    return run


def statuses(run: Run) -> dict[str, str]:
    latest: dict[str, str] = {}
    for step in run.step_runs.order_by("node_id", "attempt"):
        latest[step.node_id] = step.status
    return latest


def tool_returns(step: StepRun) -> list:
    """What an agent step's model was given as its tool calls' results, in order."""
    return [
        part["content"]
        for message in step.transcript
        for part in message["parts"]
        if part["part_kind"] == "tool-return"
    ]
