"""Agents' tool items in the gallery: a tool's approvers (usernames of the author's organization)
are never shown, and a fork names the MCP server its organization lacks."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from orchestrator.models import Agent, McpServer, Orchestration
from orchestrator.services.orchestrations import create_orchestration

pytestmark = pytest.mark.django_db

GATED = {"mcp": "tools", "tools": ["add"], "approval": {"approvers": ["alice-at-acme"]}}


def test_tool_approvers_are_not_shown_and_a_fork_needs_the_server(
    org, other_org, outsider, editors
):
    editors("alice-at-acme")
    McpServer.objects.create(
        organization=org, name="tools", url="https://mcp.example.com/mcp", tools=[{"name": "add"}]
    )
    Agent.objects.create(organization=org, name="adder", model="builtin/echo", tools=[GATED])
    inline = {"model": "builtin/echo", "tools": [GATED]}
    source = create_orchestration(
        org,
        {
            "name": "Adds",
            "is_public": True,
            "public_definition": True,
            "definition": {
                "nodes": [
                    {"id": "a", "type": "agent", "config": {"agent": inline, "prompt": "Add"}},
                    {"id": "b", "type": "agent", "config": {"agent": "adder", "prompt": "Add"}},
                ],
                "edges": [{"source": "a", "target": "b"}],
            },
        },
    )
    shown = APIClient().get(f"/api/v1/gallery/{source.pk}")
    assert shown.status_code == 200, shown.json()
    assert "alice-at-acme" not in str(shown.json())
    # Approvers stay in the author's own agent.
    assert Agent.objects.get(name="adder").tools == [GATED]

    forked = outsider.post(f"/api/v1/gallery/{source.pk}/fork")
    assert forked.status_code == 400
    assert "no MCP server 'tools'" in forked.json()["detail"]
    McpServer.objects.create(
        organization=other_org,
        name="tools",
        url="https://mcp.example.org/mcp",
        tools=[{"name": "add"}],
    )
    forked = outsider.post(f"/api/v1/gallery/{source.pk}/fork")
    assert forked.status_code == 201, forked.json()
    definition = Orchestration.objects.get(pk=forked.json()["id"]).definition
    assert definition["nodes"][0]["config"]["agent"]["tools"] == [
        {"mcp": "tools", "tools": ["add"], "approval": {"approvers": []}}
    ]
