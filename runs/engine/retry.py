"""Retry arithmetic for a step: whether another attempt is due, and after how long.

Kept apart from the scheduler on purpose: a retry is not a graph decision. The service sees a
failed attempt, asks `should_retry`, and if so creates the next attempt with a due time of
`backoff_seconds` from now (fired by the reaper from the database, not a Celery countdown);
only a final failure is shown to the scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_BACKOFF_S = 3600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A node's `retry` block. `max_attempts` counts the first attempt (1 = no retry)."""

    max_attempts: int = 1
    backoff_s: float = 1.0
    backoff_factor: float = 2.0

    @classmethod
    def from_node(cls, node: Mapping[str, Any]) -> RetryPolicy:
        """Read the policy from a normalized node; missing keys take the API defaults."""
        retry = node.get("retry") or {}
        default = cls()
        return cls(
            max_attempts=int(retry.get("max_attempts", default.max_attempts)),
            backoff_s=float(retry.get("backoff_s", default.backoff_s)),
            backoff_factor=float(retry.get("backoff_factor", default.backoff_factor)),
        )


def should_retry(policy: RetryPolicy, attempt: int) -> bool:
    """Whether attempt number `attempt` (1-based), having just failed, gets another try."""
    return attempt < policy.max_attempts


def backoff_seconds(policy: RetryPolicy, attempt: int) -> float:
    """Delay before the attempt after `attempt`: backoff_s * factor**(attempt-1), max 1 h.

    The cap also keeps a large attempt number from overflowing the float arithmetic.
    """
    exponent = max(attempt, 1) - 1
    try:
        delay = policy.backoff_s * policy.backoff_factor**exponent
    except OverflowError:
        return MAX_BACKOFF_S
    return max(0.0, min(float(delay), MAX_BACKOFF_S))
