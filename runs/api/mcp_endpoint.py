"""`/mcp`: the organization's active orchestrations served as an MCP server (streamable HTTP).

The official SDK's low-level `Server` answers the protocol, in stateless mode with JSON answers
(every POST is a whole exchange, so any process behind the load balancer can take any request).
Authentication stays ours: the bearer token is checked here (`core.auth.tenant_for_token`), a
missing or bad one answers 401 in API.md's error body before the SDK sees the request, a token
over the API's rate answers 429 (the same bucket as its API calls), and the caller's identity
rides on the ASGI scope into the handlers.

A `tools/call` fires a run (`served_tools.fire`, the runs API's path) and waits for it at most
MCP_CALL_WAIT_S: a finished run gives its output; one that pauses for people, or is still going,
gives a link to the run instead.
"""

from __future__ import annotations

import asyncio
import json
import math
import weakref
from types import SimpleNamespace
from typing import Any

import mcp_types as types
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS
from rest_framework import exceptions

from core.auth import tenant_for_token
from core.domain_errors import DomainError, Forbidden, NotFound
from core.errors import error_body
from core.throttling import TokenRateThrottle
from runs.api.streaming import wait_for
from runs.services import served_tools

SCOPE_KEY = "orchestrator.caller"
# JSON-RPC error codes of our own (the server-defined range) for what the runs API answers 403.
FORBIDDEN = -32003


def _authenticate(header: str) -> tuple[Any, Any] | str:
    """(user, tenant) for the bearer token, or the sentence of a 401."""
    close_old_connections()
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return "Send Authorization: Bearer <API token> (an organization's token)."
    try:
        return tenant_for_token(raw.strip())
    except exceptions.AuthenticationFailed as exc:
        return str(exc.detail)


def _throttled(user, tenant) -> float | None:
    """Seconds to wait when the token is over the API's rate (the same bucket), else None."""
    throttle = TokenRateThrottle()
    if throttle.allow_request(SimpleNamespace(auth=tenant, user=user), None):
        return None
    return throttle.wait()


def _caller(ctx) -> tuple[Any, Any]:
    request = getattr(ctx, "request", None)
    caller = request.scope.get(SCOPE_KEY) if request is not None else None
    if caller is None:  # never: every request passes the gate below first
        raise MCPError(FORBIDDEN, "Not authenticated.")
    return caller


def _list(tenant) -> list[served_tools.ServedTool]:
    close_old_connections()
    return served_tools.tools_for(tenant)


def _fire(tenant, user, name: str, arguments: dict | None, key: str):
    close_old_connections()
    return served_tools.fire(tenant, user, name, arguments, idempotency_key=key).pk


def _outcome(run_id) -> served_tools.RunOutcome:
    close_old_connections()
    return served_tools.outcome(run_id)


async def list_tools(ctx, params) -> types.ListToolsResult:
    _, tenant = _caller(ctx)
    tools = await sync_to_async(_list)(tenant)
    return types.ListToolsResult(
        tools=[
            types.Tool(name=t.name, description=t.description, input_schema=t.input_schema)
            for t in tools
        ]
    )


def _base_url(request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _result(outcome: served_tools.RunOutcome, base: str) -> types.CallToolResult:
    link = f"{base}/runs/{outcome.run_id}/"
    data = {
        "run_id": outcome.run_id,
        "status": outcome.status,
        "run_url": link,
        "api_url": f"{base}/api/v1/runs/{outcome.run_id}",
    }
    if outcome.finished and not outcome.failed:
        data["output"] = outcome.output
        text = _text(outcome.output)
    elif outcome.failed:
        data["error"] = outcome.error
        error = outcome.error if isinstance(outcome.error, dict) else {}
        detail = error.get("detail") or error.get("message")
        text = f"The run {outcome.status}: {detail or _text(outcome.error)}. See {link}"
    elif outcome.status == "paused":
        text = f"The run is waiting for people (an approval or an answer). Follow it at {link}"
    else:
        text = f"The run is still going ({outcome.status}). Follow it at {link}"
    return types.CallToolResult(
        content=[types.TextContent(text=text)],
        structured_content=data,
        is_error=outcome.failed,
    )


async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    user, tenant = _caller(ctx)
    key = ctx.request.headers.get("idempotency-key", "")
    try:
        run_id = await sync_to_async(_fire)(tenant, user, params.name, params.arguments, key)
    except NotFound as exc:
        raise MCPError(INVALID_PARAMS, str(exc.detail)) from None
    except Forbidden as exc:
        raise MCPError(FORBIDDEN, str(exc.detail)) from None
    except DomainError as exc:  # the input does not fit, the orchestration stopped being active
        return types.CallToolResult(
            content=[types.TextContent(text=str(exc.detail))], is_error=True
        )
    await wait_for(run_id, settings.MCP_CALL_WAIT_S)
    outcome = await sync_to_async(_outcome)(run_id)
    return _result(outcome, _base_url(ctx.request))


def build_server() -> Server:
    return Server(
        "orchestrator",
        instructions="Each tool runs one of this organization's active orchestrations.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


class McpApp:
    """The ASGI app mounted at /mcp. The SDK's session manager needs a task group that outlives
    requests; neither daphne nor Channels runs ASGI lifespan, so it is started on the first
    request, in a task of that event loop (one per loop: a test client's loops come and go)."""

    def __init__(self) -> None:
        self.server = build_server()
        self._managers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task] = set()

    async def _manager(self) -> StreamableHTTPSessionManager:
        loop = asyncio.get_running_loop()
        entry = self._managers.get(loop)
        if entry is None:
            manager = StreamableHTTPSessionManager(
                app=self.server,
                stateless=True,
                json_response=True,
                max_request_body_size=settings.API_MAX_BODY_BYTES,
            )
            ready = asyncio.Event()
            entry = self._managers[loop] = (manager, ready)
            task = loop.create_task(self._serve(manager, ready))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        manager, ready = entry
        await ready.wait()
        return manager

    async def _serve(self, manager: StreamableHTTPSessionManager, ready: asyncio.Event) -> None:
        async with manager.run():
            ready.set()
            await asyncio.Event().wait()  # until the loop ends

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope.get("headers") or [])
        found = await sync_to_async(_authenticate)(
            headers.get(b"authorization", b"").decode("latin-1")
        )
        if isinstance(found, str):
            await _send_json(send, 401, error_body("unauthorized", found), bearer=True)
            return
        if scope.get("method") == "GET":
            # A GET asks for a stream of the server's own messages. Every answer here goes back
            # on its POST and nothing else is ever sent, so, as MCP allows, there is none: the
            # SDK would hold the request open with nothing to send (under daphne, not even the
            # headers).
            detail = "This MCP server sends every answer on its POST; it offers no GET stream."
            await _send_json(send, 405, error_body("method_not_allowed", detail), allow="POST")
            return
        wait = await sync_to_async(_throttled)(*found)
        if wait is not None:
            detail = f"Too many requests: try again in {math.ceil(wait)} s."
            await _send_json(
                send, 429, error_body("rate_limited", detail), retry_after=math.ceil(wait)
            )
            return
        manager = await self._manager()
        await manager.handle_request({**scope, SCOPE_KEY: found}, receive, send)


async def _send_json(
    send,
    status: int,
    body: dict,
    *,
    bearer: bool = False,
    retry_after: int | None = None,
    allow: str = "",
) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    if bearer:
        headers.append((b"www-authenticate", b'Bearer realm="api"'))
    if allow:
        headers.append((b"allow", allow.encode()))
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


mcp_app = McpApp()
