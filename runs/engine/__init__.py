"""The run engine's pure core: statuses, the scheduler, retries and output helpers.

Imports nothing of Django, so it can be tested in microseconds and reused by any caller; the
service layer (`runs.services`) locks the run, calls `decide` and persists the result.
"""

from __future__ import annotations

from .outputs import apply_output_key, build_context, check_payload_schema, default_run_output
from .retry import MAX_BACKOFF_S, RetryPolicy, backoff_seconds, should_retry
from .scheduler import (
    ON_ERROR_CONTINUE,
    ON_ERROR_FAIL,
    Decision,
    Graph,
    StepView,
    decide,
    view_of,
)
from .states import (
    RUN_TERMINAL,
    RUN_TRANSITIONS,
    RUN_UNFINISHED,
    STEP_ACTIVE,
    STEP_TERMINAL,
    STEP_TRANSITIONS,
    STEP_UNFINISHED,
    ErrorCode,
    InvalidTransition,
    RunStatus,
    StepStatus,
    check_run_transition,
    check_step_transition,
)

__all__ = [
    "MAX_BACKOFF_S",
    "ON_ERROR_CONTINUE",
    "ON_ERROR_FAIL",
    "RUN_TERMINAL",
    "RUN_TRANSITIONS",
    "RUN_UNFINISHED",
    "STEP_ACTIVE",
    "STEP_TERMINAL",
    "STEP_TRANSITIONS",
    "STEP_UNFINISHED",
    "Decision",
    "ErrorCode",
    "Graph",
    "InvalidTransition",
    "RetryPolicy",
    "RunStatus",
    "StepStatus",
    "StepView",
    "apply_output_key",
    "backoff_seconds",
    "build_context",
    "check_payload_schema",
    "check_run_transition",
    "check_step_transition",
    "decide",
    "default_run_output",
    "should_retry",
    "view_of",
]
