"""The one place that writes a run's or a step's status.

Every status a run or step row takes goes through a function here: it checks the move against
the transition tables of `runs.engine.states` (so a bug that would rewrite a finished step or
run raises `InvalidTransition` instead), sets the timestamps the new status implies, and writes
the move's event through the run's `EventLog`. Saving stays with the caller (`Progress` saves a
whole change at once), so a move costs no query of its own. A test walks the source and fails
on a status written anywhere else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import DateTimeField, QuerySet, Value
from django.db.models.functions import Coalesce

from runs.engine import (
    RUN_TERMINAL,
    STEP_TERMINAL,
    RunStatus,
    StepStatus,
    check_run_transition,
    check_step_transition,
)
from runs.models import Run, StepRun
from runs.services.events import EventLog

# Steps that have begun: they carry a started_at.
STEP_STARTED = frozenset({StepStatus.RUNNING, StepStatus.WAITING})


def move_step(
    step: StepRun,
    new: StepStatus,
    now: datetime,
    log: EventLog | None = None,
    event: str = "",
    /,
    **data: Any,
) -> list[str]:
    """Move an existing step to `new`; returns the columns it changed, for `save(update_fields=)`.

    An ended step keeps the lease it had (the reaper only looks at running steps), so a lost
    attempt still shows how long its worker was given.
    """
    check_step_transition(step.status, new)
    step.status = new
    changed = ["status"]
    if new in STEP_STARTED and step.started_at is None:
        step.started_at = now
        changed.append("started_at")
    if new in STEP_TERMINAL:
        step.finished_at = now
        changed.append("finished_at")
    if event:
        assert log is not None  # an event is written to the change's log
        log.add(event, step.node_id, **data)
    return changed


def new_step(
    run: Run, node_id: str, node_type: str, status: StepStatus, now: datetime, **fields: Any
) -> StepRun:
    """A new attempt row (unsaved) that begins in `status`, with the timestamps it implies."""
    if status in STEP_STARTED:
        fields.setdefault("started_at", now)
    if status in STEP_TERMINAL:
        fields.setdefault("finished_at", now)
    return StepRun(
        run=run, node_id=node_id, node_type=node_type, status=status, created_at=now, **fields
    )


def reused_step(step: StepRun, run: Run) -> StepRun:
    """A replay's copy (unsaved) of an ended step: it keeps the status and times it had."""
    return StepRun(
        run=run,
        node_id=step.node_id,
        node_type=step.node_type,
        attempt=1,
        status=step.status,
        input=step.input,
        output=step.output,
        edges_taken=step.edges_taken,
        started_at=step.started_at,
        finished_at=step.finished_at,
        model=step.model,
    )


def claim_step(
    steps: QuerySet[StepRun], now: datetime, lease_expires_at: datetime, config: Any = None
) -> int:
    """Claim the pending steps of `steps` for a worker, in one conditional UPDATE; `config`, when
    given, is written as their input in the same statement (rendered by whoever claims).

    The `WHERE status = 'pending'` is the claim: a second delivery of the same message updates
    nothing (0 rows), so only one worker runs a step. A step that goes on after it waited for
    people keeps its start, as `move_step` keeps it: its duration spans the wait, as an approval
    step's does, and its first model calls stay inside it.
    """
    check_step_transition(StepStatus.PENDING, StepStatus.RUNNING)
    written = {} if config is None else {"input": config}
    return steps.filter(status=StepStatus.PENDING).update(
        status=StepStatus.RUNNING,
        started_at=Coalesce("started_at", Value(now, output_field=DateTimeField())),
        lease_expires_at=lease_expires_at,
        **written,
    )


def move_run(
    run: Run, new: RunStatus, now: datetime, log: EventLog, event: str = "", /, **data: Any
) -> None:
    """Move a run to `new`, the caller saving it (`Progress.save`).

    A run that ends has a start too: one cancelled while queued started and ended at once.
    """
    check_run_transition(run.status, new)
    run.status = new
    if new == RunStatus.RUNNING or new in RUN_TERMINAL:
        run.started_at = run.started_at or now
    if new in RUN_TERMINAL:
        run.finished_at = now
    if event:
        assert log is not None  # an event is written to the change's log
        log.add(event, **data)


def queue_run(event: dict[str, Any], **fields: Any) -> Run:
    """Insert a new run in `queued`, with its first event (`run_queued`, seq 1)."""
    run = Run(status=RunStatus.QUEUED, last_seq=0, **fields)
    log = EventLog(run)
    log.add("run_queued", **event)
    run.save(force_insert=True)
    log.flush(save_seq=False)
    return run
