"""A stdio MCP server for the engine's tests (run as a script: the operator's kind of server)."""

from __future__ import annotations

from mcp.server import MCPServer

server = MCPServer("stdio tools")


@server.tool(description="Echo the text back.")
def echo(text: str) -> str:
    return text


if __name__ == "__main__":
    server.run("stdio")
