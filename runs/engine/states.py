"""Run and step statuses, and the only transitions between them.

The service layer persists statuses; this module is where the rules live, so that a bug that
tries to move a finished step or run fails loudly instead of silently rewriting history.
Each enum has exactly one transition table; everything else (terminal sets, checks) is derived.
"""

from __future__ import annotations

from enum import StrEnum


class InvalidTransition(ValueError):
    """A status change the tables do not allow (e.g. leaving a terminal state)."""

    def __init__(self, kind: str, old: str, new: str) -> None:
        super().__init__(f"invalid {kind} transition: {old} -> {new}")
        self.kind = kind
        self.old = old
        self.new = new


class RunStatus(StrEnum):
    QUEUED = "queued"  # services.start_run: the row exists, nothing dispatched yet
    RUNNING = "running"  # services, when the first step is enqueued (or on resume)
    PAUSED = "paused"  # services, when a human_input/approval step waits and nothing else runs
    SUCCEEDED = "succeeded"  # services, from the scheduler's run_outcome: all nodes terminal
    FAILED = "failed"  # services, from run_outcome (step_failed) or a run-level limit
    CANCELLED = "cancelled"  # services.cancel, once no step is running or waiting any more


class StepStatus(StrEnum):
    PENDING = "pending"  # services, when the scheduler makes it ready (or the reaper re-queues it)
    RUNNING = "running"  # the Celery task, by claiming it (conditional update with a lease)
    WAITING = "waiting"  # the node executor: delay, approval, human_input, subflow wait off-worker
    SUCCEEDED = "succeeded"  # the task (or the resume/timer path for a waiting step)
    FAILED = "failed"  # the task/timer after its last attempt, timeout or payload_schema mismatch
    SKIPPED = "skipped"  # services, from the scheduler: no incoming edge was taken
    CANCELLED = "cancelled"  # services, from the scheduler: the run was cancelled or failed first


RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.PAUSED, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}
    ),
    RunStatus.PAUSED: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}

# A running step is never cancelled: "steps in progress finish". Running -> pending is the reaper
# re-queueing a step whose lease expired (a killed worker).
STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    StepStatus.PENDING: frozenset({StepStatus.RUNNING, StepStatus.SKIPPED, StepStatus.CANCELLED}),
    StepStatus.RUNNING: frozenset(
        {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.WAITING, StepStatus.PENDING}
    ),
    StepStatus.WAITING: frozenset(
        {StepStatus.RUNNING, StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.CANCELLED}
    ),
    StepStatus.SUCCEEDED: frozenset(),
    StepStatus.FAILED: frozenset(),
    StepStatus.SKIPPED: frozenset(),
    StepStatus.CANCELLED: frozenset(),
}

# Derived from the tables so they can never disagree: terminal = no way out.
RUN_TERMINAL: frozenset[RunStatus] = frozenset(s for s, nxt in RUN_TRANSITIONS.items() if not nxt)
RUN_UNFINISHED: frozenset[RunStatus] = frozenset(RunStatus) - RUN_TERMINAL
STEP_TERMINAL: frozenset[StepStatus] = frozenset(
    s for s, nxt in STEP_TRANSITIONS.items() if not nxt
)
STEP_UNFINISHED: frozenset[StepStatus] = frozenset(StepStatus) - STEP_TERMINAL
# Steps that hold the run open: the run cannot end while one of these exists.
STEP_ACTIVE: frozenset[StepStatus] = frozenset({StepStatus.RUNNING, StepStatus.WAITING})


def check_run_transition(old: RunStatus | str, new: RunStatus | str) -> None:
    """Raise `InvalidTransition` unless a run may go from `old` to `new`."""
    old_s, new_s = RunStatus(old), RunStatus(new)
    if new_s not in RUN_TRANSITIONS[old_s]:
        raise InvalidTransition("run", old_s, new_s)


def check_step_transition(old: StepStatus | str, new: StepStatus | str) -> None:
    """Raise `InvalidTransition` unless a step may go from `old` to `new`."""
    old_s, new_s = StepStatus(old), StepStatus(new)
    if new_s not in STEP_TRANSITIONS[old_s]:
        raise InvalidTransition("step", old_s, new_s)


class ErrorCode:
    """Codes for a run's `error.code`; plain strings so they serialize as-is."""

    STEP_FAILED = "step_failed"
    COST_LIMIT_EXCEEDED = "cost_limit_exceeded"
    SUBFLOW_DEPTH_EXCEEDED = "subflow_depth_exceeded"
    RUN_LIMIT_EXCEEDED = "run_limit_exceeded"
    APPROVAL_DENIED = "approval_denied"
    APPROVAL_EXPIRED = "approval_expired"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"

    ALL: frozenset[str] = frozenset(
        {
            STEP_FAILED,
            COST_LIMIT_EXCEEDED,
            SUBFLOW_DEPTH_EXCEEDED,
            RUN_LIMIT_EXCEEDED,
            APPROVAL_DENIED,
            APPROVAL_EXPIRED,
            TIMEOUT,
            CANCELLED,
        }
    )
    # A subflow step that fails because its child hit a limit of the run tree passes the child's
    # code up, so the root run says which limit stopped it rather than `step_failed`.
    TREE_LIMITS: frozenset[str] = frozenset({SUBFLOW_DEPTH_EXCEEDED, RUN_LIMIT_EXCEEDED})
