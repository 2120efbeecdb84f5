"""The MCP servers page lists the org's servers with their tools and status; what a server says
about its tools (names, descriptions, schemas) is shown as text, never as markup."""

from __future__ import annotations

import pytest

from core.choices import Role
from orchestrator.models import McpServer
from runs.services import mcp_servers
from tests.mcp_servers import HOSTILE_NAME, mcp_server
from tests.pages.test_pages import member_client

pytestmark = pytest.mark.django_db


def test_a_servers_tools_show_as_text_even_when_they_hold_markup(client, org, other_org, settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with mcp_server(hostile=True) as url:
        server = mcp_servers.create_server(org, name="hostile", url=url)
        mcp_servers.create_server(other_org, name="theirs", url=url)
    assert server.status == "ok"
    assert HOSTILE_NAME in [tool["name"] for tool in server.tools]
    page = member_client(client, org).get("/mcp-servers/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;script&gt;alert(&#x27;d&#x27;)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "<script>alert" not in html
    assert "Add two integers." in html and "hostile" in html
    assert "theirs" not in html


def test_a_server_that_failed_shows_its_error_and_stdio_servers_show_by_name(client, org, settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.MCP_STDIO_SERVERS = {"files": {"command": "mcp-files", "args": [], "env": None}}
    with mcp_server() as url:
        mcp_servers.create_server(org, name="broken", url=url.replace("/mcp", "/nope"))
    html = member_client(client, org).get("/mcp-servers/").content.decode()
    assert 'data-status="error"' in html and "listing the tools failed" in html
    assert "files" in html and "MCP_STDIO_SERVERS" in html


def test_only_an_editor_gets_the_button_that_lists_a_servers_tools_again(client, org):
    McpServer.objects.create(organization=org, name="docs", url="http://127.0.0.1:9/mcp")
    as_viewer = member_client(client, org, role=Role.VIEWER).get("/mcp-servers/")
    assert "data-refresh" not in as_viewer.content.decode()
    client.logout()
    as_editor = member_client(client, org, name="bob").get("/mcp-servers/")
    assert "data-refresh" in as_editor.content.decode()
