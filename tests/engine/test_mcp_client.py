"""The pure MCP client the registry and the agent loop share: list a server's tools, call one
(text or JSON back, and whether the tool reported an error), all through the net guard."""

from __future__ import annotations

import socket
import sys

import pytest

from runs.engine import mcp
from runs.engine.netguard import NetPolicy
from tests.mcp_servers import mcp_server
from tests.serving import ROOT

LOOPBACK = NetPolicy(allowed_networks=("127.0.0.0/8",))


@pytest.fixture(scope="module")
def url():
    with mcp_server() as served:
        yield served


def test_it_lists_the_tools_with_their_schemas(url):
    tools = {tool.name: tool for tool in mcp.list_tools_sync(mcp.McpEndpoint(url, LOOPBACK))}
    assert tools["add"].description == "Add two integers."
    assert tools["add"].input_schema["required"] == ["a", "b"]


def test_a_call_returns_the_result_and_a_tool_error_is_flagged_not_raised(url):
    endpoint = mcp.McpEndpoint(url, LOOPBACK)
    assert mcp.call_tool_sync(endpoint, "add", {"a": 2, "b": 3}).content == {"result": 5}
    failed = mcp.call_tool_sync(endpoint, "broken", {})
    assert failed.is_error and "this tool is broken" in failed.content


def test_an_inside_address_is_refused_before_anything_is_sent(url):
    with pytest.raises(mcp.McpFailure, match="internal address"):
        mcp.list_tools_sync(mcp.McpEndpoint(url, NetPolicy()))


def test_a_server_that_is_not_there_fails_with_a_sentence(url):
    with pytest.raises(mcp.McpFailure, match="listing the tools failed"):
        mcp.list_tools_sync(mcp.McpEndpoint(url.replace("/mcp", "/none"), LOOPBACK, timeout=5))


def test_an_operators_stdio_server_is_listed_and_called():
    command = mcp.McpCommand(sys.executable, (str(ROOT / "tests" / "mcp_stdio_server.py"),))
    assert [tool.name for tool in mcp.list_tools_sync(command)] == ["echo"]
    result = mcp.call_tool_sync(command, "echo", {"text": "hi"})
    assert result.content == {"result": "hi"} and not result.is_error


def test_a_server_that_never_answers_fails_within_the_timeout():
    """It accepts the connection and says nothing: the whole exchange is bounded, so the sync
    web worker that registers a server is not held past its own timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        endpoint = mcp.McpEndpoint(f"http://127.0.0.1:{port}/mcp", LOOPBACK, timeout=1)
        with pytest.raises(mcp.McpFailure, match="did not answer in time"):
            mcp.list_tools_sync(endpoint)
