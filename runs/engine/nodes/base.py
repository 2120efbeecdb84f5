"""What the service layer hands an executor, and what it gets back: plain data only.

The service resolves names (agents, credentials) and renders templates before an executor
runs, so executors are pure functions of their input plus the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AgentSpec:
    """An agent resolved by the service: an org agent, a definition agent or an inline one."""

    name: str
    model: str
    system_prompt: str = ""
    tools: tuple[str, ...] = ()
    temperature: float | None = None
    max_turns: int | None = None
    base_url: str = ""
    api_key: str = ""
    price_input_per_1k: float = 0.0
    price_output_per_1k: float = 0.0
    script: tuple = ()

    def cost(self, tokens_input: int, tokens_output: int) -> float:
        return (
            tokens_input / 1000 * self.price_input_per_1k
            + tokens_output / 1000 * self.price_output_per_1k
        )


@dataclass(frozen=True)
class Credential:
    kind: str
    value: str

    def headers(self) -> dict[str, str]:
        """How each kind of credential goes on an HTTP request."""
        import base64

        if self.kind == "bearer":
            return {"Authorization": f"Bearer {self.value}"}
        if self.kind == "basic":
            token = base64.b64encode(self.value.encode()).decode()
            return {"Authorization": f"Basic {token}"}
        if self.kind == "header":
            name, _, value = self.value.partition(":")
            return {name.strip(): value.strip()}
        return {"X-API-Key": self.value}


@dataclass(frozen=True)
class NetPolicy:
    """CIDRs that HTTP calls may reach although they are loopback or private."""

    allowed_networks: tuple[str, ...] = ()


@dataclass
class StepContext:
    run_id: str
    step_id: str
    attempt: int
    config: dict
    emit: Callable[[str, dict], None]
    deadline: float | None
    net: NetPolicy = field(default_factory=NetPolicy)
    agent: AgentSpec | None = None
    credential: Credential | None = None
    transport: Any = None


@dataclass
class StepResult:
    output: Any
    model: str | None = None
    tokens_input: int = 0
    tokens_output: int = 0
    cost_usd: float = 0.0
    turns: int = 0
    tool_calls: int = 0


class StepFailed(Exception):
    """A failure the user reads in the trace; `retryable` says whether a retry may help."""

    def __init__(self, message: str, *, retryable: bool = True, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.details = details or {}
