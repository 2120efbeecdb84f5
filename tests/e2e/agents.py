"""What the agent editor's browser tests set up: a registered MCP server, an orchestration of one
agent step, and that step's inspector opened as a person opens it (a click on its card)."""

from __future__ import annotations

from playwright.sync_api import expect

from orchestrator.models import McpServer, Orchestration
from orchestrator.services.orchestrations import create_orchestration

ADD_AND_GREET = ("add", "greet")


def tool_server(org, names=ADD_AND_GREET, *, url: str = "http://127.0.0.1:9/mcp", tools=None):
    """A server the org registered, `tools` as it listed them (by default one plain tool per
    name); nothing is called when the editor offers them."""
    listed = tools or [
        {"name": name, "description": f"{name.title()}.", "input_schema": {"type": "object"}}
        for name in names
    ]
    return McpServer.objects.create(
        organization=org, name="tools", url=url, status="ok", tools=listed
    )


def one_agent_flow(org, name: str) -> Orchestration:
    """An orchestration whose one step, `ask`, is an echo agent with no tools."""
    node = {
        "id": "ask",
        "type": "agent",
        "config": {"agent": {"model": "builtin/echo"}, "prompt": "Hi"},
    }
    return create_orchestration(org, {"name": name, "definition": {"nodes": [node]}})


def click_node(page, node_id: str) -> None:
    """Select a step on the canvas: the canvas takes the clicks; a card is what a person aims at."""
    card = page.locator(f'.gnode[data-node-id="{node_id}"]').bounding_box()
    page.mouse.click(card["x"] + card["width"] / 2, card["y"] + card["height"] / 2)


def open_tools_field(page, orchestration: Orchestration):
    """The editor at `orchestration` with its `ask` step selected: the inspector's tools field
    and its source picker, once the picker offers the org's `tools` server."""
    page.goto(f"/orchestrations/{orchestration.pk}/")
    click_node(page, "ask")
    tools = page.locator("#tab-inspector .agent-tools")
    picker = tools.locator("select[name=tool-source]")
    expect(picker.locator('option[value="mcp:tools"]')).to_have_count(1)
    return tools, picker
