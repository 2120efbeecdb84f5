"""Work found in the database rather than in the broker: due timers, expired leases, lost
messages. The reaper runs on beat every few seconds; each fix is a normal state change, so
running it twice, or in two processes at once, changes nothing more."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.types import Pk
from orchestrator.definition.nodes import types_running_on
from orchestrator.services import schedules
from runs.engine import RUN_TERMINAL, ErrorCode, RunStatus, StepStatus
from runs.models import Run, StepRun
from runs.services import dispatch, firing, outputs
from runs.services.progress import Progress
from runs.services.subflows import ended_tool_call_children, resume_parent
from runs.services.transitions import move_step
from runs.services.waiting import cancel_pending

logger = logging.getLogger(__name__)
# A pending worker step nobody claimed within this long is enqueued again (a lost message).
STALE_PENDING = timedelta(seconds=30)
STALE_QUEUED = timedelta(seconds=30)
# Due work of the apps above runs (approvals registers its expiry and escalation in its
# AppConfig.ready): each is called with the time and returns what it did, by name.
DUE_WORK: list[Callable[[datetime], dict[str, int]]] = []


def register_due_work(reaper: Callable[[datetime], dict[str, int]]) -> None:
    """Have the reaper call `reaper(now)` on every pass, after runs past their deadline."""
    if reaper not in DUE_WORK:
        DUE_WORK.append(reaper)


def fire_timer(step_run_id: Pk) -> None:
    """A delay step is due: it succeeds with a null output."""
    with transaction.atomic():
        step = StepRun.objects.filter(pk=step_run_id).only("run_id").first()
        if step is None:
            return
        progress = Progress.lock(step.run_id)
        current = StepRun.objects.filter(
            pk=step_run_id,
            status=StepStatus.WAITING,
            node_type__in=types_running_on("timer"),
            wake_at__lte=timezone.now(),
        ).first()
        if current is None or progress.run.status in RUN_TERMINAL:
            return
        progress.steps[current.node_id] = current
        progress.succeed(current, None)
        progress.advance()
        progress.save()


def requeue_expired(step: StepRun) -> None:
    """The worker that claimed this step is gone: record the lost attempt and run it again.

    A lost worker is not the step's fault, so this does not use up the node's retries. The new
    attempt inherits the lost one's transcript (an agent step's recorded model calls and tool
    results) and goes on from it; a retry after a failure starts over (`Progress.fail`): the
    conversation may be what failed.
    """
    with transaction.atomic():
        progress = Progress.lock(step.run_id)
        current = StepRun.objects.filter(
            pk=step.pk, status=StepStatus.RUNNING, lease_expires_at__lt=timezone.now()
        ).first()
        if current is None or progress.run.status in RUN_TERMINAL:
            return
        current.error = {
            "code": "worker_lost",
            "message": "The worker running this step stopped answering.",
        }
        move_step(current, StepStatus.FAILED, progress.now)
        progress.store(current)
        if progress.run.cancel_requested:
            # The run is stopping (cancel, timeout, cost limit) and starts nothing new: the lost
            # attempt is the step's end, and the run, which was waiting for it, can end too.
            progress.steps[current.node_id] = current
            progress.log.add(
                "step_failed",
                current.node_id,
                error=current.error["message"],
                code="worker_lost",
                attempt=current.attempt,
            )
            progress.advance()
            progress.save()
            return
        # An agent step goes on from the conversation the lost attempt recorded.
        retry = progress.new_step(
            current.node_id,
            StepStatus.PENDING,
            attempt=current.attempt + 1,
            transcript=current.transcript,
            # The transcript's model calls already spent (when the step waited) stay spent.
            turns=current.turns,
        )
        progress.log.add(
            "step_retry",
            current.node_id,
            attempt=current.attempt,
            next_attempt=retry.attempt,
            delay_s=0,
            error=current.error["message"],
        )
        dispatch.enqueue_step(retry.pk)
        progress.save()


def resume_parent_of(child_run_id: Pk) -> None:
    child = Run.objects.filter(pk=child_run_id).first()
    if child is None or child.parent_run_id is None or child.status not in RUN_TERMINAL:
        return
    with transaction.atomic():
        progress = Progress.lock(child.parent_run_id)
        if progress.run.status in RUN_TERMINAL:
            return
        resume_parent(progress, child)
        progress.advance()
        progress.save()


def time_out(run_id: Pk) -> None:
    """The run passed its run_timeout_s: stop it like a cancel, and fail it with `timeout`."""
    with transaction.atomic():
        progress = Progress.lock(run_id)
        run = progress.run
        if run.status in RUN_TERMINAL or run.deadline_at is None or run.deadline_at > progress.now:
            return
        assert run.started_at is not None  # a deadline is set when the run starts
        limit = int((run.deadline_at - run.started_at).total_seconds())
        run.error = {
            "code": ErrorCode.TIMEOUT,
            "detail": f"The run took longer than its run_timeout_s of {limit} s.",
            "step_id": None,
        }
        run.cancel_requested = True
        cancel_pending(run.pk)
        for step in progress.steps.values():
            if step.status == StepStatus.WAITING:
                step.save(update_fields=move_step(step, StepStatus.CANCELLED, progress.now))
        progress.advance()
        progress.save()


def _resend_due(kind: str, pk: Pk, every: timedelta) -> bool:
    """At most one new message per stale row per `every`. Sending one on every pass would
    flood a queue that is merely slow: each copy is a claim to refuse, and they all queue up in
    front of the real work, so a backlog older than the threshold would only ever grow."""
    return cache.add(f"reaper:resent:{kind}:{pk}", True, timeout=every.total_seconds())


def reap() -> dict[str, int]:
    now = timezone.now()
    counts = {"expired": 0, "timers": 0, "requeued": 0, "runs": 0, "children": 0, "timed_out": 0}
    for run_id in Run.objects.filter(
        status__in=[RunStatus.RUNNING, RunStatus.PAUSED], deadline_at__lt=now
    ).values_list("pk", flat=True):
        time_out(run_id)
        counts["timed_out"] += 1
    for reaper in DUE_WORK:
        counts.update(reaper(now))
    for trigger_id in schedules.due_triggers(now):
        firing.fire(trigger_id, now)
        counts["schedules"] = counts.get("schedules", 0) + 1
    for step in StepRun.objects.filter(status=StepStatus.RUNNING, lease_expires_at__lt=now):
        requeue_expired(step)
        counts["expired"] += 1
    for step_run_id in StepRun.objects.filter(
        status=StepStatus.WAITING, node_type__in=types_running_on("timer"), wake_at__lte=now
    ).values_list("pk", flat=True):
        fire_timer(step_run_id)
        counts["timers"] += 1
    stale = StepRun.objects.filter(
        status=StepStatus.PENDING, node_type__in=types_running_on("worker")
    ).filter(Q(wake_at__lte=now) | Q(wake_at__isnull=True, created_at__lte=now - STALE_PENDING))
    for step_run_id in stale.values_list("pk", flat=True):
        if not _resend_due("step", step_run_id, STALE_PENDING):
            continue
        with transaction.atomic():
            dispatch.enqueue_step(step_run_id)
        counts["requeued"] += 1
    for run_id in Run.objects.filter(
        status=RunStatus.QUEUED, created_at__lte=now - STALE_QUEUED
    ).values_list("pk", flat=True):
        if not _resend_due("run", run_id, STALE_QUEUED):
            continue
        with transaction.atomic():
            dispatch.enqueue_advance(run_id)
        counts["runs"] += 1
    for child_id in StepRun.objects.filter(
        status=StepStatus.WAITING,
        node_type__in=types_running_on("child_run"),
        child_run__status__in=RUN_TERMINAL,
    ).values_list("child_run_id", flat=True):
        resume_parent_of(child_id)
        counts["children"] += 1
    # The ended child runs of agents' orchestration tool calls whose step still waits.
    for ended in ended_tool_call_children():
        resume_parent_of(ended)
        counts["children"] += 1
    counts["refines_lost"] = outputs.reap_lost_refines(now)
    return counts
