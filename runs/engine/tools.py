"""Tools agents may call. Each returns text for the model; failures are text too, so the agent
can read them and try something else.

An MCP server's tools are its own: their names, descriptions and argument schemas are what the
server listed, and a call's result is data for the model (text, or JSON as text), never read by
the engine. A tool that reports an error answers `error: ...` like the built-in ones; a server
that cannot be reached or that the net guard refuses fails the step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import ApprovalRequired, CallDeferred, ModelRetry, RunContext, Tool
from pydantic_ai.messages import ModelResponse

from orchestrator.definition.jsonschemas import error_lines
from orchestrator.definition.nodes import duplicate_tool_name, model_tool_name
from runs.engine import mcp
from runs.engine.failures import StepFailed
from runs.engine.netguard import NetPolicy, fetch
from runs.engine.redaction import Redactor

BODY_LIMIT = 20_000

# What the model is told about each tool: its description and its arguments' JSON Schema.
SCHEMAS: dict[str, dict[str, Any]] = {
    "http_get": {
        "description": "Fetch a URL with HTTP GET and return its status and body.",
        "parameters": {
            "type": "object",
            "properties": {
                "url": {"type": "string", "description": "An http or https URL."},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "required": ["url"],
        },
    },
}


def http_get(
    args: dict[str, Any], policy: NetPolicy, transport: Any = None, key: str = ""
) -> tuple[bool, str]:
    url = args.get("url")
    if not isinstance(url, str):
        return False, "error: http_get needs a url"
    given = args.get("headers")
    headers = {str(k): str(v) for k, v in given.items()} if isinstance(given, dict) else {}
    # The same key on every attempt of this call: a server that honours it applies the call once
    # even when a worker died after sending it and the step went on from its transcript.
    if key and not any(name.lower() == "idempotency-key" for name in headers):
        headers["Idempotency-Key"] = key
    try:
        response = fetch(
            "GET", url, policy=policy, headers=headers, timeout=20, transport=transport
        )
    except StepFailed as exc:
        return False, f"error: {exc.message}"
    text = response.text
    answer: dict[str, Any] = {"status": response.status_code, "body": text[:BODY_LIMIT]}
    if len(text) > BODY_LIMIT or response.extensions.get("truncated"):
        answer["truncated"] = True  # the model is told the page goes on, not that this is all
    return True, json.dumps(answer)


# What each tool named in orchestrator.definition.nodes.KNOWN_TOOLS does.
TOOLS: dict[str, Callable[[dict[str, Any], NetPolicy, Any, str], tuple[bool, str]]] = {
    "http_get": http_get
}


def run_tool(
    name: str,
    args: dict[str, Any],
    allowed: tuple[str, ...],
    policy: NetPolicy,
    transport: Any = None,
    key: str = "",
) -> tuple[bool, str]:
    if name not in allowed:
        return False, f"error: this agent has no tool '{name}'"
    tool = TOOLS.get(name)
    if tool is None:
        return False, f"error: unknown tool '{name}'"
    return tool(args, policy, transport, key)


def _turn(ctx: RunContext[None]) -> int:
    """The number of the model call that asked for this tool call, counted over the whole
    conversation (a resumed one too), so the same on every attempt."""
    return sum(1 for message in ctx.messages if isinstance(message, ModelResponse))


def _mcp_text(result: mcp.McpToolResult, redact: Redactor) -> str:
    content = result.content
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    text = redact(text)[:BODY_LIMIT]
    return f"error: {text}" if result.is_error else text


def mcp_tool(
    source: mcp.McpToolSource, tool: mcp.McpTool, outcomes: dict[str, bool], gated: bool = False
) -> Tool[None]:
    """One tool of an MCP server as a pydantic-ai tool: the server's description and schema as
    listed, the call through `mcp.call_tool` (and so the net guard)."""
    redact = Redactor(source.secrets)

    async def call(ctx: RunContext[None], **args: Any) -> str:
        if gated and not ctx.tool_call_approved:
            raise ApprovalRequired()  # deferred, never made here: the agent step asks a person
        result = await mcp.call_tool(source.server, tool.name, args)
        outcomes[ctx.tool_call_id or ""] = not result.is_error
        return _mcp_text(result, redact)

    schema = tool.input_schema if tool.input_schema.get("type") == "object" else {}
    made: Tool[None] = Tool.from_schema(
        call,
        name=model_tool_name(tool.name),
        description=tool.description or None,
        json_schema={"type": "object", "properties": {}, **schema},
        takes_ctx=True,
    )
    return made


@dataclass(frozen=True)
class OrchestrationToolSource:
    """An orchestration of the run's organization offered to the agent as a tool: its arguments
    are the orchestration's declared inputs, a call runs it as a child run of the step."""

    name: str
    description: str
    target_id: str
    input_schema: dict[str, Any] = field(default_factory=dict)
    approval: dict[str, Any] | None = None


def orchestration_tool(source: OrchestrationToolSource, gated: bool = False) -> Tool[None]:
    """A call is never made here: it is deferred (pydantic-ai's external calls), the step waits,
    and the service starts the child run whose output becomes the call's result."""

    schema = source.input_schema if source.input_schema.get("type") == "object" else {}

    def call(ctx: RunContext[None], **args: Any) -> str:
        # Arguments that the orchestration's inputs refuse go back to the model to fix: no
        # person is asked about them, no child run is started.
        problems = error_lines(schema, args, "arguments")
        if problems:
            raise ModelRetry(
                f"the arguments do not match the inputs of '{source.name}': " + "; ".join(problems)
            )
        if gated and not ctx.tool_call_approved:
            raise ApprovalRequired()
        raise CallDeferred(metadata={"orchestration": source.target_id})

    made: Tool[None] = Tool.from_schema(
        call,
        name=source.name,
        description=source.description or None,
        json_schema={"type": "object", "properties": {}, **schema},
        takes_ctx=True,
    )
    return made


def agent_tools(
    allowed: tuple[str, ...],
    policy: NetPolicy,
    transport: Any,
    outcomes: dict[str, bool],
    sources: tuple[mcp.McpToolSource, ...] = (),
    key_prefix: str = "",
    gated: frozenset[str] = frozenset(),
    orchestrations: tuple[OrchestrationToolSource, ...] = (),
) -> list[Tool[None]]:
    """The agent's tools as pydantic-ai tools: the built-in ones it names, and its MCP servers'.
    Each call notes in `outcomes` (by tool call id) whether it succeeded, for the `tool_result`
    event. Two tools of one name would leave the model unable to tell them apart: StepFailed.
    `key_prefix` (the run's and step's ids), the model call that asked for it and the call's id
    make a built-in call's Idempotency-Key (a provider may number its calls afresh in each
    answer). A call to a tool in `gated` is deferred until a person approves it (pydantic-ai's
    deferred tools); a call to one of `orchestrations` is deferred until its child run ends."""

    def as_tool(name: str) -> Tool[None]:
        def call(ctx: RunContext[None], **args: Any) -> str:
            if name in gated and not ctx.tool_call_approved:
                raise ApprovalRequired()
            key = f"{key_prefix}:{_turn(ctx)}:{ctx.tool_call_id}" if key_prefix else ""
            ok, text = run_tool(name, args, allowed, policy, transport, key)
            outcomes[ctx.tool_call_id or ""] = ok
            return text

        schema = SCHEMAS.get(name, {})
        return Tool.from_schema(
            call,
            name=name,
            description=schema.get("description"),
            json_schema=schema.get("parameters", {"type": "object", "properties": {}}),
            takes_ctx=True,
        )

    tools = [as_tool(name) for name in allowed if name in TOOLS]
    tools += [
        mcp_tool(source, tool, outcomes, model_tool_name(tool.name) in gated)
        for source in sources
        for tool in source.tools
    ]
    tools += [orchestration_tool(source, source.name in gated) for source in orchestrations]
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            raise StepFailed(
                f"{duplicate_tool_name(tool.name)} (or name fewer tools of its MCP servers, "
                "in an item's `tools`)",
                retryable=False,
            )
        seen.add(tool.name)
    return tools
