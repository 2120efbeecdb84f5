from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict


@dataclass
class Completion:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tokens_input: int = 0
    tokens_output: int = 0


Provider = Callable[..., Completion]


def words(text: Any) -> int:
    """The builtin models count a token per word: deterministic and good enough for budgets."""
    return len(str(text or "").split())
