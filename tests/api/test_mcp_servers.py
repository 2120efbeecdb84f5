"""The MCP server registry: registering a server lists its tools with the official client, through
the net guard; refresh lists them again; the credential goes on the wire but never comes back;
stdio servers come only from the operator's setting."""

from __future__ import annotations

import pytest

from orchestrator.models import McpServer
from runs.services import mcp_servers
from tests.mcp_servers import mcp_server

pytestmark = pytest.mark.django_db

TOKEN = "mcp-secret-token-0123456789"


@pytest.fixture
def loopback_allowed(settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.MCP_CLIENT_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def tools_url():
    with mcp_server(hostile=True) as url:
        yield url


@pytest.fixture(scope="module")
def guarded_url():
    with mcp_server(require_header=("Authorization", f"Bearer {TOKEN}")) as url:
        yield url


def test_registering_a_server_lists_its_tools(editor, tools_url, loopback_allowed):
    response = editor.post(
        "/api/v1/mcp-servers", {"name": "tools", "url": tools_url}, format="json"
    )
    assert response.status_code == 201, response.json()
    server = response.json()
    assert server["status"] == "ok" and server["error"] == ""
    assert server["checked_at"] is not None
    tools = {tool["name"]: tool for tool in server["tools"]}
    assert {"add", "greet"} <= set(tools)
    assert tools["add"]["description"] == "Add two integers."
    assert tools["add"]["input_schema"]["properties"]["a"]["type"] == "integer"
    listed = editor.get("/api/v1/mcp-servers").json()["items"]
    assert [item["name"] for item in listed] == ["tools"]
    assert editor.get(f"/api/v1/mcp-servers/{server['id']}").json()["tools"] == server["tools"]


def test_an_unreachable_server_is_kept_with_its_error(editor, loopback_allowed, tools_url):
    response = editor.post(
        "/api/v1/mcp-servers",
        {"name": "gone", "url": tools_url.replace("/mcp", "/not-mcp")},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["status"] == "error"
    assert "listing the tools failed" in response.json()["error"]
    assert response.json()["tools"] == []


def test_the_credential_goes_on_the_wire_and_never_comes_back(
    editor, guarded_url, loopback_allowed
):
    refused = editor.post(
        "/api/v1/mcp-servers", {"name": "bare", "url": guarded_url}, format="json"
    )
    assert refused.json()["status"] == "error"
    credential = editor.post(
        "/api/v1/credentials",
        {"name": "mcp-token", "kind": "bearer", "value": TOKEN},
        format="json",
    ).json()
    response = editor.post(
        "/api/v1/mcp-servers",
        {"name": "guarded", "url": guarded_url, "credential": "mcp-token"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "ok"
    assert response.json()["credential"] == credential["id"]
    assert TOKEN not in response.content.decode()
    assert TOKEN not in editor.get("/api/v1/mcp-servers").content.decode()


def test_refresh_lists_the_tools_again_and_patch_to_a_new_url_too(
    editor, tools_url, loopback_allowed
):
    server = editor.post(
        "/api/v1/mcp-servers",
        {"name": "tools", "url": tools_url.replace("/mcp", "/later")},
        format="json",
    ).json()
    assert server["status"] == "error"
    url = f"/api/v1/mcp-servers/{server['id']}"
    McpServer.objects.filter(pk=server["id"]).update(url=tools_url)
    refreshed = editor.post(f"{url}/refresh")
    assert refreshed.status_code == 200
    assert refreshed.json()["status"] == "ok" and refreshed.json()["error"] == ""
    patched = editor.patch(url, {"url": tools_url.replace("/mcp", "/again")}, format="json")
    assert patched.json()["status"] == "error"
    assert editor.patch(url, {"name": "renamed"}, format="json").json()["name"] == "renamed"
    assert editor.delete(url).status_code == 204
    assert editor.get(url).status_code == 404


def test_viewers_read_and_editors_write(viewer, editor, tools_url, loopback_allowed):
    assert viewer.get("/api/v1/mcp-servers").status_code == 200
    answer = viewer.post("/api/v1/mcp-servers", {"name": "x", "url": tools_url}, format="json")
    assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
    server = editor.post("/api/v1/mcp-servers", {"name": "x", "url": tools_url}, format="json")
    assert viewer.post(f"/api/v1/mcp-servers/{server.json()['id']}/refresh").status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"name": "local", "command": "/bin/sh", "args": ["-c", "id"]},
        {"name": "local", "url": "http://example.com/mcp", "command": "/bin/sh"},
        {"name": "local", "transport": "stdio", "command": "python"},
        {"name": "local", "url": "stdio:///bin/sh"},
        {"name": "local", "url": "file:///bin/sh"},
    ],
)
def test_no_api_call_can_register_a_process(editor, body):
    response = editor.post("/api/v1/mcp-servers", body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["error"] == "validation_error"
    assert not McpServer.objects.exists()


def test_the_operators_stdio_servers_are_listed_read_only(editor, settings):
    settings.MCP_STDIO_SERVERS = {"files": {"command": "mcp-files", "args": [], "env": None}}
    items = editor.get("/api/v1/mcp-servers").json()["items"]
    assert [(i["name"], i["transport"], i["read_only"]) for i in items] == [
        ("files", "stdio", True)
    ]
    url = f"/api/v1/mcp-servers/{items[0]['id']}"
    assert editor.get(url).json()["name"] == "files"
    for answer in (
        editor.patch(url, {"name": "mine"}, format="json"),
        editor.delete(url),
        editor.post(f"{url}/refresh"),
    ):
        assert answer.status_code == 409 and answer.json()["error"] == "conflict"


def test_the_agent_loop_lists_and_calls_a_servers_tools(org, editor, tools_url, loopback_allowed):
    editor.post("/api/v1/mcp-servers", {"name": "tools", "url": tools_url}, format="json")
    names = [tool.name for tool in mcp_servers.list_tools(org.pk, "tools")]
    assert "greet" in names
    result = mcp_servers.call_tool(org.pk, "tools", "greet", {"name": "Ada"})
    assert result.content == {"result": "Hello, Ada!"} and not result.is_error
    failed = mcp_servers.call_tool(org.pk, "tools", "broken", {})
    assert failed.is_error and "this tool is broken" in failed.content
