"""The failure a step reports, apart from the node types so that any engine module (the net
guard, the providers, the tools) can raise it without importing the executors' registry."""

from __future__ import annotations

from typing import Any


class StepFailed(Exception):
    """A failure the user reads in the trace; `retryable` says whether a retry may help.

    `code` is the step error's code when it is not the plain `step_failed` (a run-level code such
    as `cost_limit_exceeded` then ends the run with it); `usage` is what the attempt spent before
    it failed (tokens, cost, turns), which still counts against the run's budget."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        details: dict[str, Any] | None = None,
        code: str | None = None,
        usage: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.details = details or {}
        self.code = code
        self.usage = usage or {}
