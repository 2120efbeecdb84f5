"""Run and step statuses, and the only transitions between them.

`runs.services.transitions` applies every status change and checks it here first; this module is
where the rules live, so that a bug that tries to move a finished step or run fails loudly
instead of silently rewriting history. The comments say which service function sets each status
(all of them through `runs.services.transitions`).
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
    QUEUED = "queued"  # creation.create_run: the row exists, nothing dispatched yet
    RUNNING = "running"  # Progress.begin when a worker starts it; Progress._settle_status resumes
    PAUSED = "paused"  # Progress._settle_status, when only people's steps (or a budget hold) remain
    SUCCEEDED = "succeeded"  # Progress.finish, from the scheduler's run_outcome: all nodes terminal
    FAILED = "failed"  # Progress.finish, from run_outcome (step_failed) or a run-level limit
    CANCELLED = "cancelled"  # Progress.finish after lifecycle.cancel, once no step runs or waits


class StepStatus(StrEnum):
    # A new attempt: Progress.start_node (worker nodes), a retry in Progress.fail, or the reaper's
    # new attempt after a lost worker (timers.requeue_expired).
    PENDING = "pending"
    # execution.claim, by a conditional update with a lease; transforms and subflows start
    # running inline (Progress.start_node, subflows.start_subflow).
    RUNNING = "running"
    # Off-worker waits: a delay (Progress.start_node), approval and human_input
    # (waiting.start_human_step), a subflow's child run (subflows.start_subflow).
    WAITING = "waiting"
    # Progress.succeed: a worker's result (execution._record), a timer (timers.fire_timer), a
    # child run's end (subflows.resume_parent) or a person's answer (approvals.services).
    SUCCEEDED = "succeeded"
    # Progress.fail (same paths, after the last attempt, a timeout or a payload_schema mismatch);
    # timers.requeue_expired for the attempt of a lost worker.
    FAILED = "failed"
    SKIPPED = "skipped"  # Progress.advance, from the scheduler: no incoming edge was taken
    # Progress.advance, from the scheduler (the run was cancelled or failed first); waiting steps
    # by lifecycle.cancel, timers.time_out and Progress._withdraw_questions.
    CANCELLED = "cancelled"


# A paused run does not succeed directly: the answer that ends its last step resumes it first
# (Progress.finish moves it paused -> running -> succeeded).
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

# A running step is never cancelled: "steps in progress finish". Running -> pending and
# waiting -> running are allowed for re-queueing or resuming the same attempt, though today's
# reaper (timers.requeue_expired) fails a lost worker's attempt and adds a new pending one.
STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    StepStatus.PENDING: frozenset({StepStatus.RUNNING, StepStatus.SKIPPED, StepStatus.CANCELLED}),
    StepStatus.RUNNING: frozenset(
        {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.WAITING, StepStatus.PENDING}
    ),
    # -> pending: an agent step's tool call was decided, and a worker takes the step up again.
    StepStatus.WAITING: frozenset(
        {
            StepStatus.PENDING,
            StepStatus.RUNNING,
            StepStatus.SUCCEEDED,
            StepStatus.FAILED,
            StepStatus.CANCELLED,
        }
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
    # Under a credit_limit, an agent step whose model has no known price (refused before the call).
    MODEL_UNPRICED = "model_unpriced"
    # An agent whose answer still did not match its output_schema after 2 retries.
    OUTPUT_INVALID = "output_invalid"

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
            MODEL_UNPRICED,
            OUTPUT_INVALID,
        }
    )
    # A subflow step that fails because its child hit a limit of the run tree passes the child's
    # code up, so the root run says which limit stopped it rather than `step_failed`.
    TREE_LIMITS: frozenset[str] = frozenset({SUBFLOW_DEPTH_EXCEEDED, RUN_LIMIT_EXCEEDED})
