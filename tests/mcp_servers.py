"""A small MCP server (the official SDK's MCPServer over streamable HTTP) that tests start on
127.0.0.1 in a thread, with a couple of tools, one of them named to try the pages' escaping."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from tests.serving import free_port

HOSTILE_NAME = "<img src=x onerror=alert(1)>"


def build(
    *, hostile: bool = False, large: bool = False, expected_header: tuple[str, str] | None = None
) -> MCPServer:
    server = MCPServer("test tools")

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Say hello to someone.")
    def greet(name: str) -> str:
        return f"Hello, {name}!"

    @server.tool(description="Always fails.")
    def broken() -> str:
        raise ToolError("this tool is broken")

    if large:

        @server.tool(description="Answers with that many MiB of text.")
        def large_text(mebibytes: int) -> str:
            return "x" * (mebibytes << 20)

    if hostile:

        @server.tool(name=HOSTILE_NAME, description="<script>alert('d')</script>")
        def hostile_tool(q: str) -> str:
            return q

    return server


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # a thread cannot install them
        pass


@contextlib.contextmanager
def mcp_server(
    *, hostile: bool = False, large: bool = False, require_header: tuple[str, str] | None = None
) -> Iterator[str]:
    """Serve the test tools; yield the MCP endpoint's URL. With `require_header`, a request
    without that header (name, value) answers 401, like a server behind a token."""
    app = build(hostile=hostile, large=large).streamable_http_app(
        stateless_http=True, json_response=True
    )
    if require_header is not None:
        inner = app
        name, value = require_header[0].lower().encode(), require_header[1].encode()

        async def app(scope, receive, send):
            if scope["type"] == "http" and dict(scope["headers"]).get(name) != value:
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"no token"})
                return
            await inner(scope, receive, send)

    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test MCP server did not start")
        time.sleep(0.05)
    try:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=2, trust_env=False)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
