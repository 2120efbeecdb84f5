"""The MCP servers page in chromium: a server whose tools were listed and one that is down read
apart at a glance (the status pills take the run statuses' colours), and the cards of the grid
line up."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from orchestrator.models import McpServer

pytestmark = [pytest.mark.browser]

TOOL = {"name": "add", "description": "Add two integers.", "input_schema": {"type": "object"}}

# The background a pill of the given status classes takes, drawn on the page itself.
PILL = """classes => {
    const probe = document.createElement("span");
    probe.className = classes;
    document.body.append(probe);
    const colour = getComputedStyle(probe).backgroundColor;
    probe.remove();
    return colour;
}"""


def test_a_server_that_is_down_is_red_one_that_is_up_green_and_the_cards_line_up(page, org):
    McpServer.objects.create(
        organization=org, name="docs", url="http://127.0.0.1:9/mcp", status="ok", tools=[TOOL]
    )
    McpServer.objects.create(
        organization=org,
        name="down",
        url="http://127.0.0.1:9/mcp",
        status="error",
        error="listing the tools failed: All connection attempts failed",
    )
    page.goto("/mcp-servers/")
    up = page.locator('.mcp-server[data-status="ok"]')
    down = page.locator('.mcp-server[data-status="error"]')
    expect(up).to_contain_text("Add two integers.")
    expect(down).to_contain_text("All connection attempts failed")
    colour = lambda card: card.locator(".status").evaluate(  # noqa: E731
        "el => getComputedStyle(el).backgroundColor"
    )
    assert colour(down) == page.evaluate(PILL, "status failed")
    assert colour(up) == page.evaluate(PILL, "status succeeded")
    assert colour(up) != colour(down)
    assert up.bounding_box()["y"] == down.bounding_box()["y"]


def test_an_editor_lists_a_servers_tools_again_from_its_card(page, org):
    """This stack allows no inside address: listing again finds the server refused, and the
    card says so (the old listing was 'ok')."""
    server = McpServer.objects.create(
        organization=org, name="docs", url="http://127.0.0.1:9/mcp", status="ok", tools=[TOOL]
    )
    page.goto("/mcp-servers/")
    card = page.locator(f'.mcp-server[data-mcp-server-id="{server.pk}"]')
    expect(card).to_have_attribute("data-status", "ok")
    card.get_by_role("button", name="List its tools again").click()
    expect(card).to_have_attribute("data-status", "error")
    expect(card.locator("p.error")).to_contain_text("internal address")
    server.refresh_from_db()
    assert server.status == "error"
