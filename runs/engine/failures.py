"""The failure a step reports, apart from the node types so that any engine module (the net
guard, the providers, the tools) can raise it without importing the executors' registry."""

from __future__ import annotations


class StepFailed(Exception):
    """A failure the user reads in the trace; `retryable` says whether a retry may help."""

    def __init__(self, message: str, *, retryable: bool = True, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.details = details or {}
