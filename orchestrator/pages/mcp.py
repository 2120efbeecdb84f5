"""The MCP servers page: the org's registered servers with their tools and status, and the
operator's stdio servers by name. Registering goes through the API; an editor lists a
server's tools again from its card (static/js/mcp_servers.js calls the API's refresh)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from core.choices import Role
from core.pages import membership
from core.rendering import json_text
from orchestrator.models import McpServer


def _tool(tool: dict) -> dict:
    """A listed tool as the template shows it: all of it text (the template escapes it)."""
    schema = tool.get("input_schema") or {}
    return {
        "name": str(tool.get("name", "")),
        "description": str(tool.get("description", "")),
        "schema": json_text(schema, sort_keys=True),
    }


@login_required
def mcp_server_list(request: HttpRequest) -> HttpResponse:
    current = membership(request)
    servers = McpServer.objects.filter(organization=current.organization).order_by("name")
    rows = [{"server": server, "tools": [_tool(t) for t in server.tools]} for server in servers]
    return render(
        request,
        "orchestrator/mcp_servers.html",
        {
            "nav": "mcp",
            "rows": rows,
            "stdio_names": sorted(settings.MCP_STDIO_SERVERS),
            "can_edit": current.role in (Role.EDITOR, Role.ADMIN),
        },
    )
