"""MCP servers as tool sources: list a server's tools and call one, through the official SDK.

Pure and async, so the registry's refresh (a service) and the agent loop (an executor) share it:
the caller resolves the server into an `McpEndpoint` (URL, headers from its credential, the net
policy) or `McpCommand` (a stdio server the operator configured), and gets plain data back.

A streamable HTTP server is reached through the net guard's httpx2 client (the SDK's client is
built on httpx2), so an MCP server's URL reaches only what an `http` step could: the address is
vetted on every request, pinned, and every redirect is checked again.

Any failure (unreachable, refused by the guard, not an MCP server, a protocol error, a timeout)
is an `McpFailure` with a sentence for a person; the caller redacts it with its secrets.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import mcp_types
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from orchestrator.definition.nodes import model_tool_name
from runs.engine.failures import StepFailed
from runs.engine.netguard import NetPolicy, check_url, guarded_async_client

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 20.0
# A listing bigger than this is cut: a registry row, a page and a model's tool list all show it.
MAX_TOOLS = 200
MAX_DESCRIPTION = 4000


class McpFailure(StepFailed):
    """The server could not be listed or called; the message says why, for a person."""


@dataclass(frozen=True)
class McpEndpoint:
    """A streamable HTTP MCP server as the caller resolved it."""

    url: str
    policy: NetPolicy
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class McpCommand:
    """A stdio MCP server: only ever one the operator named in MCP_STDIO_SERVERS."""

    command: str
    args: tuple[str, ...] = ()
    env: dict[str, str] | None = None
    timeout: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class McpTool:
    name: str
    description: str
    input_schema: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
        }


@dataclass(frozen=True)
class McpToolSource:
    """One `{"mcp": ...}` item of an agent, resolved by the service: the server to call, the
    tools the agent may use (as the server listed them, already narrowed to the item's `tools`)
    and the secrets its answers are masked with (its credential's)."""

    server: McpEndpoint | McpCommand
    server_name: str
    tools: tuple[McpTool, ...]
    secrets: tuple[str, ...] = ()
    # The item's `approval` (None: its calls need none), for the approval-gated call.
    approval: dict[str, Any] | None = None

    def model_names(self) -> tuple[str, ...]:
        return tuple(model_tool_name(tool.name) for tool in self.tools)


@dataclass(frozen=True)
class McpToolResult:
    """What a tool call gave: its text (or JSON when the server sent structured content), and
    whether the tool itself reported an error (which a model should see and may correct)."""

    content: Any
    is_error: bool = False


def vet(url: str, policy: NetPolicy) -> None:
    """Refuse (McpFailure) a URL the guard would refuse, before anything is stored or sent."""
    try:
        check_url(url, policy)
    except StepFailed as exc:
        raise McpFailure(str(exc), retryable=exc.retryable) from None


@asynccontextmanager
async def _connected(server: McpEndpoint | McpCommand) -> AsyncIterator[Client]:
    if isinstance(server, McpCommand):
        target: Any = StdioServerParameters(
            command=server.command, args=list(server.args), env=server.env
        )
        async with Client(target, read_timeout_seconds=server.timeout, cache=None) as client:
            yield client
        return
    http = guarded_async_client(server.policy, timeout=server.timeout, headers=server.headers)
    async with http:
        transport = streamable_http_client(server.url, http_client=http, terminate_on_close=False)
        async with Client(
            transport, read_timeout_seconds=server.timeout, cache=None, mode="legacy"
        ) as client:
            yield client


def _root_cause(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (the SDK's task groups wrap what went wrong)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _failure(exc: BaseException, where: str) -> McpFailure:
    cause = _root_cause(exc)
    if isinstance(cause, McpFailure):
        return cause
    if isinstance(cause, StepFailed):  # the guard's refusal, a name that does not resolve
        return McpFailure(str(cause), retryable=cause.retryable)
    if isinstance(cause, TimeoutError):
        return McpFailure(f"{where}: the MCP server did not answer in time")
    if isinstance(cause, MCPError):
        return McpFailure(f"{where}: the MCP server answered with an error: {cause}")
    text = str(cause) or type(cause).__name__
    return McpFailure(f"{where}: {text}")


async def _guarded(
    server: McpEndpoint | McpCommand, where: str, work: Callable[[Client], Awaitable[T]]
) -> T:
    if isinstance(server, McpEndpoint):
        await anyio.to_thread.run_sync(vet, server.url, server.policy)
    try:
        # The whole exchange (connect, handshake, each page), not each read: registering runs in
        # a sync web worker, which must answer within its own timeout.
        with anyio.fail_after(server.timeout):
            async with _connected(server) as client:
                return await work(client)
    except McpFailure:
        raise
    except Exception as exc:  # anything the SDK or the transport raises is the server's failure
        raise _failure(exc, where) from None


def _tool(tool: mcp_types.Tool) -> McpTool:
    schema = tool.input_schema if isinstance(tool.input_schema, dict) else {"type": "object"}
    return McpTool(
        name=tool.name,
        description=(tool.description or "")[:MAX_DESCRIPTION],
        input_schema=schema,
    )


async def list_tools(server: McpEndpoint | McpCommand) -> list[McpTool]:
    """Every tool the server lists (following its pages), at most MAX_TOOLS."""

    async def work(client: Client) -> list[McpTool]:
        tools: list[McpTool] = []
        cursor = None
        while len(tools) < MAX_TOOLS:
            page = await client.list_tools(cursor=cursor)
            tools.extend(_tool(tool) for tool in page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools[:MAX_TOOLS]

    return await _guarded(server, "listing the tools failed", work)


def _content(result: mcp_types.CallToolResult) -> Any:
    if result.structured_content is not None:
        return result.structured_content
    parts = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        else:
            parts.append(json.dumps(block.model_dump(mode="json", by_alias=True)))
    return "\n".join(parts)


async def call_tool(
    server: McpEndpoint | McpCommand, name: str, arguments: dict[str, Any] | None = None
) -> McpToolResult:
    """Call the tool `name`; a tool that reports an error is a result with `is_error`, while a
    server that cannot be reached or refuses the call is an McpFailure."""

    async def work(client: Client) -> McpToolResult:
        result = await client.call_tool(name, arguments or {})
        return McpToolResult(content=_content(result), is_error=bool(result.is_error))

    return await _guarded(server, f"calling the tool {name!r} failed", work)


def list_tools_sync(server: McpEndpoint | McpCommand) -> list[McpTool]:
    """`list_tools` for synchronous callers (services, a worker's step)."""
    return anyio.run(list_tools, server)


def call_tool_sync(
    server: McpEndpoint | McpCommand, name: str, arguments: dict[str, Any] | None = None
) -> McpToolResult:
    """`call_tool` for synchronous callers."""
    return anyio.run(call_tool, server, name, arguments)
