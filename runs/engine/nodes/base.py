"""What the service layer hands an executor, and what it gets back: plain data only.

The service resolves names (agents, credentials) and renders templates before an executor
runs, so executors are pure functions of their input plus the network.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runs.engine import pricing
from runs.engine.failures import StepFailed as StepFailed  # re-exported: the node types raise it
from runs.engine.mcp import McpToolSource
from runs.engine.netguard import NetPolicy as NetPolicy  # re-exported: part of a step's context
from runs.engine.pricing import Price
from runs.engine.tools import OrchestrationToolSource

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class AgentSpec:
    """An agent resolved by the service: an org agent, a definition agent or an inline one."""

    name: str
    model: str
    system_prompt: str = ""
    tools: tuple[str, ...] = ()
    temperature: float | None = None
    max_turns: int | None = None
    # The most tokens one model call may answer with; None: the provider's (or SDK's) default.
    max_tokens: int | None = None
    base_url: str = ""
    api_key: str = ""
    # The agent's own price; None means the price table's figure for the model.
    price: Price | None = None
    script: tuple[Any, ...] = ()
    # JSON Schema the final answer must validate against (the agent's, or its step's); None: text.
    output_schema: dict[str, Any] | None = None
    # The MCP servers whose tools the agent may call; `tools` holds every tool's name as the
    # model is told it (the built-in ones and these).
    tool_sources: tuple[McpToolSource, ...] = ()
    # Tools (built-in or an MCP server's, by the name the model is told) whose calls wait for a
    # person: {name: {"approvers", "timeout_s", "on_timeout"}}.
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Orchestrations of the organization the agent may call as tools (each a child run).
    orchestrations: tuple[OrchestrationToolSource, ...] = ()

    def cost(self, tokens_input: int, tokens_output: int) -> float | None:
        """USD for these tokens, or None when neither the agent nor the table prices the model."""
        return pricing.cost(self.model, self.price, tokens_input, tokens_output)

    @property
    def priced(self) -> bool:
        return pricing.is_priced(self.model, self.price)

    def secrets(self) -> tuple[str, ...]:
        """The API key and the MCP servers' credentials, for `redaction`: a model server's
        error may quote the key, an MCP server's answer its credential."""
        own = (self.api_key, self.api_key.strip()) if self.api_key else ()
        return (*own, *(secret for source in self.tool_sources for secret in source.secrets))


@dataclass(frozen=True)
class Credential:
    kind: str
    value: str

    def headers(self) -> dict[str, str]:
        """How each kind of credential goes on an HTTP request."""
        if self.kind == "bearer":
            return {"Authorization": f"Bearer {header_value(self.value, 'credential')}"}
        if self.kind == "basic":
            token = base64.b64encode(self.value.encode()).decode()
            return {"Authorization": f"Basic {token}"}
        if self.kind == "header":
            name, _, value = self.value.partition(":")
            return {name.strip(): header_value(value, "credential")}
        return {"X-API-Key": header_value(self.value, "credential")}

    def secrets(self) -> tuple[str, ...]:
        """Every form in which the value can come back, for `redaction`: as stored and trimmed
        (an error may quote a pasted value without its trailing newline), the basic token that goes
        on the wire and its password alone, a header credential's value without its name."""
        forms = {self.value, self.value.strip()}
        if self.kind == "basic":
            forms.add(base64.b64encode(self.value.encode()).decode())
            forms.add(self.value.partition(":")[2])
        if self.kind == "header":
            forms.add(self.value.partition(":")[2].strip())
        return tuple(forms)


def header_value(secret: str, what: str) -> str:
    """A secret as an HTTP header can carry it: without the whitespace around it, which HTTP does
    not allow there and which a pasted value often brings along (a trailing newline).

    One that still holds a line break or another control character is refused here, without being
    quoted: the HTTP library would refuse it too, but with an exception, and a DEBUG log line, that
    show it in clear. It also means that a stored value can never add a header of its own.
    """
    value = secret.strip()
    if _CONTROL.search(value):
        raise StepFailed(
            f"the {what} holds a line break or another control character, which cannot be sent "
            "in an HTTP header: store it again without them",
            retryable=False,
        )
    return value


def _no_delta(turn: int, text: str) -> None:
    """Where streamed text goes when nobody watches (outputs' refine, tests)."""


# (event type, event data): what `StepContext.record` writes along with a step's transcript.
Event = tuple[str, dict[str, Any]]


@dataclass
class StepContext:
    run_id: str
    step_id: str
    attempt: int
    config: dict[str, Any]
    emit: Callable[[str, dict[str, Any]], None]
    deadline: float | None
    net: NetPolicy = field(default_factory=NetPolicy)
    agent: AgentSpec | None = None
    credential: Credential | None = None
    transport: Any = None
    # The run has a credit_limit: a model with no known price is refused before it is called.
    credit_limited: bool = False
    # USD this step may still spend before the run goes over its limit; None: not checked here.
    budget_usd: float | None = None
    # Text of a model's answer as it streams in, by model call (turn, from 1): shown live as
    # `agent_delta` frames, never stored (the turn's `agent_turn` event holds the whole answer).
    # Called on the agent's event loop for every piece: it must return at once, without blocking
    # or touching the database (the service's DeltaSink only queues frames).
    delta: Callable[[int, str], None] = _no_delta
    # Durable agents: `record(transcript, events)` stores the conversation so far (pydantic-ai's
    # messages as JSON) with the events that tell of its last model call or tool result, in one
    # write, so that the record and the log agree. None: the events are only emitted.
    record: Callable[[list[Any], list[Event]], None] | None = None
    # The transcript an earlier attempt of this step recorded before its worker was lost: the
    # conversation goes on from there instead of starting over.
    resume: list[Any] | None = None
    # Of the model calls in `resume`, how many were already spent (counted into the step's and
    # the run's cost when the step waited for people): they are not counted again.
    spent_turns: int = 0
    # People's decisions on tool calls that waited for them: {"turn" (the model call that asked),
    # "tool_call_id", "approved", "comment", "by"}. The step goes on with those of its last model
    # call's calls that have no result yet.
    decisions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StepResult:
    output: Any
    model: str | None = None
    tokens_input: int = 0
    tokens_output: int = 0
    cost_usd: float | None = 0.0  # None: the model has no known price
    turns: int = 0
    tool_calls: int = 0
    # Tool calls that wait for a person's approval ({"turn", "tool_call_id", "tool", "args",
    # "approval"}): the step waits, holding no worker, and goes on from its transcript.
    waiting: list[dict[str, Any]] = field(default_factory=list)
    # A durable agent's last model call, when the conversation ended with it: (transcript,
    # events) as `StepContext.record` takes them, for the service to write with the outcome.
    last_turn: tuple[list[Any], list[Event]] | None = None

    def usage(self) -> dict[str, Any]:
        """The step row's model, tokens, cost, turns and tool calls."""
        return {
            "model": self.model or "",
            "tokens_input": self.tokens_input,
            "tokens_output": self.tokens_output,
            "cost_usd": self.cost_usd,
            "turns": self.turns,
            "tool_calls": self.tool_calls,
        }
