"""The agent inspector's tools in chromium: an MCP server's tools (listed by a local MCP server
when the test registers it) and another orchestration are added, one tool marked as needing
approval, and the saved definition holds the items; the server's names are shown as text."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from orchestrator.definition.nodes import model_tool_name
from orchestrator.models import McpServer
from orchestrator.services.orchestrations import create_orchestration
from runs.engine import mcp
from runs.engine.netguard import NetPolicy
from runs.models import TriggerKind as RunTrigger
from runs.services import events, lifecycle
from tests.e2e.agents import click_node, one_agent_flow, open_tools_field, tool_server
from tests.mcp_servers import HOSTILE_NAME, mcp_server

pytestmark = [pytest.mark.browser, pytest.mark.worker]

LOOPBACK = NetPolicy(allowed_networks=("127.0.0.0/8",))


def test_add_an_mcp_servers_tools_one_needing_approval_and_an_orchestration(page, org, editor):
    # Listed in a thread of its own: Playwright's event loop runs in this one.
    with mcp_server(hostile=True) as url, ThreadPoolExecutor(1) as pool:
        listed = pool.submit(mcp.list_tools_sync, mcp.McpEndpoint(url, LOOPBACK)).result()
    McpServer.objects.create(
        organization=org,
        name="tools",
        url=url,
        status="ok",
        tools=[tool.as_dict() for tool in listed],
    )
    create_orchestration(
        org,
        {
            "name": "Summarise",
            "description": "Summarise a text.",
            "status": "active",
            "definition": {"nodes": [{"id": "t", "type": "transform", "config": {"output": 1}}]},
        },
    )
    orchestration = create_orchestration(
        org,
        {
            "name": "Helper",
            "definition": {
                "nodes": [
                    {
                        "id": "ask",
                        "type": "agent",
                        "config": {
                            "agent": {"model": "builtin/echo", "tools": ["http_get"]},
                            "prompt": "Hi",
                        },
                    }
                ]
            },
        },
    )
    page.goto(f"/orchestrations/{orchestration.pk}/")
    click_node(page, "ask")
    tools = page.locator("#tab-inspector .agent-tools")
    expect(tools.locator(".tool-item")).to_have_count(1)
    expect(tools.locator(".tool-item")).to_contain_text("http_get (built in)")

    picker = tools.locator("select[name=tool-source]")
    expect(picker.locator('option[value="mcp:tools"]')).to_have_count(1)
    picker.select_option("mcp:tools")
    choices = tools.locator(".tool-choices")
    add = choices.locator('li.tool-choice[data-tool="add"]')
    expect(add).to_contain_text("Add two integers.")
    # The server's names and descriptions are text, never markup.
    hostile = choices.locator("li.tool-choice", has_text=HOSTILE_NAME)
    expect(hostile).to_contain_text("<script>alert('d')</script>")
    expect(choices.locator("img, script")).to_have_count(0)
    add.locator("input[name=tool]").check()
    greet = choices.locator('li.tool-choice[data-tool="greet"]')
    greet.locator("input[name=tool]").check()
    greet.locator("input[name=tool-approval]").check()
    tools.locator("button[name=add-tool]").click()
    expect(tools.locator(".tool-item")).to_have_count(3)
    expect(tools.locator(".tool-item").nth(1)).to_contain_text("MCP tools: add")
    expect(tools.locator(".tool-item").nth(2).locator("input[name=approval]")).to_be_checked()

    picker.select_option("orchestration:summarise")
    expect(tools.locator("input[name=tool-name]")).to_have_value("summarise")
    expect(tools.locator("input[name=tool-description]")).to_have_value("Summarise a text.")
    tools.locator("button[name=add-tool]").click()
    expect(tools.locator(".tool-item")).to_have_count(4)

    page.click("#save")
    expect(page.locator(".flash.ok")).to_contain_text("Saved as version 2")
    saved = editor.get(f"/api/v1/orchestrations/{orchestration.pk}").json()["definition"]
    assert saved["nodes"][0]["config"]["agent"]["tools"] == [
        "http_get",
        {"mcp": "tools", "tools": ["add"]},
        {"mcp": "tools", "tools": ["greet"], "approval": {}},
        {"orchestration": "summarise", "name": "summarise", "description": "Summarise a text."},
    ]
    assert page.evaluate("window.pwned") is None


def test_an_mcp_tools_call_and_its_markup_read_as_text_in_the_run_view(page, org):
    """A real run on the worker, whose net guard refuses inside addresses (this stack sets no
    HTTP_ALLOWED_NETWORKS): the agent calls a tool of a local MCP server, the call is refused and
    fails the step; the call's markup, the error and a result's markup show as text."""
    hostile_arg = "<img src=x onerror=window.pwned=1>"
    name = model_tool_name(HOSTILE_NAME)
    with mcp_server(hostile=True) as url, ThreadPoolExecutor(1) as pool:
        listed = pool.submit(mcp.list_tools_sync, mcp.McpEndpoint(url, LOOPBACK)).result()
    McpServer.objects.create(
        organization=org,
        name="tools",
        url=url,
        status="ok",
        tools=[tool.as_dict() for tool in listed],
    )
    agent = {"model": "builtin/script", "tools": [{"mcp": "tools", "tools": [HOSTILE_NAME]}]}
    script = [{"tool": name, "args": {"q": hostile_arg}}, "Done."]
    flow = create_orchestration(
        org,
        {
            "name": "Hostile",
            "status": "active",
            "definition": {
                "nodes": [
                    {
                        "id": "look",
                        "type": "agent",
                        "config": {"agent": agent, "script": script, "prompt": "Go"},
                    }
                ]
            },
        },
    )
    run, _ = lifecycle.fire(flow, {}, trigger_kind=RunTrigger.API)
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "failed", timeout=30_000)
    # What a server's tool answers, as the agent loop records it (this worker may not reach it).
    events.append_now(
        run.pk, "tool_result", "look", tool_name=name, ok=True, preview=hostile_arg, duration_ms=3
    )
    page.click('.gnode[data-node-id="look"]')
    trace = page.locator("#step-panel .agent-trace")
    expect(trace.locator(".msg.tool-call")).to_contain_text(name)
    expect(trace.locator(".msg.tool-call pre")).to_contain_text(hostile_arg)
    expect(page.locator("#step-panel")).to_contain_text("internal addresses are refused")
    expect(trace.locator(".msg.tool-result.ok pre")).to_contain_text(hostile_arg)
    expect(page.locator("#step-panel img")).to_have_count(0)
    assert page.evaluate("window.pwned") is None


def _focused(page) -> str:
    """The focused element as `tag[name]`, e.g. `select[tool-source]`."""
    return page.evaluate(
        "() => `${document.activeElement.tagName.toLowerCase()}[${document.activeElement.name}]`"
    )


def test_the_tools_field_works_from_the_keyboard_without_losing_the_focus(page, org, editor):
    with mcp_server() as url, ThreadPoolExecutor(1) as pool:
        listed = pool.submit(mcp.list_tools_sync, mcp.McpEndpoint(url, LOOPBACK)).result()
    tool_server(org, url=url, tools=[tool.as_dict() for tool in listed])
    orchestration = one_agent_flow(org, "Keys")
    tools, picker = open_tools_field(page, orchestration)

    # http_get: chosen with the arrow key, added with Tab and Enter; the focus is back on the
    # picker (the Add button hides), so the next Tab does not jump past the field.
    picker.focus()
    page.keyboard.press("ArrowDown")
    expect(picker).to_have_value("builtin:http_get")
    page.keyboard.press("Tab")
    assert _focused(page) == "button[add-tool]"
    page.keyboard.press("Enter")
    expect(tools.locator(".tool-item")).to_have_count(1)
    assert _focused(page) == "select[tool-source]"

    # The server's `add` tool: Tab to its box, Space, Tab to its approval box, Space, Add.
    page.keyboard.press("ArrowDown")  # http_get again
    page.keyboard.press("ArrowDown")
    expect(picker).to_have_value("mcp:tools")
    add = tools.locator('li.tool-choice[data-tool="add"]')
    for _ in range(3):  # all its tools, all needing approval, then `add`
        page.keyboard.press("Tab")
    expect(add.locator("input[name=tool]")).to_be_focused()
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    expect(add.get_by_label("add needs approval")).to_be_focused()
    page.keyboard.press("Space")
    tools.locator("button[name=add-tool]").focus()
    page.keyboard.press("Enter")
    expect(tools.locator(".tool-item")).to_have_count(2)
    assert _focused(page) == "select[tool-source]"

    # Unticking an item's approval redraws the list; the focus stays on that box.
    gated = tools.locator(".tool-item").nth(1).locator("input[name=approval]")
    expect(gated).to_be_checked()
    gated.focus()
    page.keyboard.press("Space")
    expect(tools.locator(".tool-item").nth(1).locator("input[name=approval]")).not_to_be_checked()
    expect(tools.locator(".tool-item").nth(1).locator("input[name=approval]")).to_be_focused()
    # Removing the last item moves the focus to the one before it, then to the picker.
    page.keyboard.press("Tab")
    assert _focused(page) == "button[remove-tool]"
    page.keyboard.press("Enter")
    expect(tools.locator(".tool-item")).to_have_count(1)
    expect(tools.locator('.tool-item button[name="remove-tool"]')).to_be_focused()
    page.keyboard.press("Enter")
    expect(tools.locator(".tool-item")).to_have_count(0)
    assert _focused(page) == "select[tool-source]"

    page.click("#save")
    expect(page.locator(".flash.ok")).to_contain_text("Saved as version 2")
    saved = editor.get(f"/api/v1/orchestrations/{orchestration.pk}").json()["definition"]
    assert saved["nodes"][0]["config"]["agent"]["tools"] == []


def test_ticking_a_tools_approval_adds_that_tool_as_needing_approval(page, org, editor):
    orchestration = one_agent_flow(org, "Gated")
    tool_server(org)
    tools, picker = open_tools_field(page, orchestration)
    picker.select_option("mcp:tools")
    # `add` ticked; for `greet` only its approval box: greet is added, needing approval.
    tools.locator('li.tool-choice[data-tool="add"] input[name=tool]').check()
    greet = tools.locator('li.tool-choice[data-tool="greet"]')
    greet.get_by_label("greet needs approval").check()
    expect(greet.locator("input[name=tool]")).to_be_checked()
    tools.locator("button[name=add-tool]").click()
    expect(tools.locator(".tool-item")).to_have_count(2)
    page.click("#save")
    expect(page.locator(".flash.ok")).to_contain_text("Saved as version 2")
    saved = editor.get(f"/api/v1/orchestrations/{orchestration.pk}").json()["definition"]
    assert saved["nodes"][0]["config"]["agent"]["tools"] == [
        {"mcp": "tools", "tools": ["add"]},
        {"mcp": "tools", "tools": ["greet"], "approval": {}},
    ]


def test_a_tools_approval_box_sits_on_its_tools_line(page, org):
    orchestration = one_agent_flow(org, "Lines")
    tool_server(org)
    tools, picker = open_tools_field(page, orchestration)
    picker.select_option("mcp:tools")
    # Each "needs approval" reads as part of its tool's line, not as a line of its own that
    # could belong to the tool above or below it.
    for name in ("add", "greet"):
        row = tools.locator(f'li.tool-choice[data-tool="{name}"]')
        tool = row.locator("input[name=tool]").bounding_box()
        approval = row.get_by_label(f"{name} needs approval").bounding_box()
        assert abs(tool["y"] - approval["y"]) < 4, (name, tool, approval)
        assert approval["x"] > tool["x"], (name, tool, approval)
    # Add is a button its text's size, not a bar across the field that reads as an input.
    add = tools.locator("button[name=add-tool]").bounding_box()
    assert add["width"] < picker.bounding_box()["width"] / 2, add
