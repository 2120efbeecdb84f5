"""Where the keyboard is shows: a control reached with Tab (a checkbox, a select, a button, a
link) draws an outline in the accent colour, not the pale tint a text field wears when clicked."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.agents import one_agent_flow, open_tools_field, tool_server

pytestmark = [pytest.mark.browser]

ACCENT = """() => {
    const probe = document.createElement("span");
    probe.style.color = "var(--accent)";
    document.body.append(probe);
    const colour = getComputedStyle(probe).color;
    probe.remove();
    return colour;
}"""

OUTLINE = """el => {
    const style = getComputedStyle(el);
    return [style.outlineStyle, parseFloat(style.outlineWidth), style.outlineColor];
}"""


def test_a_control_reached_with_tab_shows_an_accent_outline(page, org):
    tool_server(org, ["add"])
    tools, picker = open_tools_field(page, one_agent_flow(org, "Focus"))
    picker.select_option("mcp:tools")
    picker.focus()
    accent = page.evaluate(ACCENT)
    for expected in ("all-tools", "all-tools-approval", "tool", "tool-approval"):
        page.keyboard.press("Tab")
        focused = page.locator("input:focus")
        expect(focused).to_have_attribute("name", expected)
        style, width, colour = focused.evaluate(OUTLINE)
        assert (style, colour) == ("solid", accent) and width >= 2, (expected, style, width, colour)
    page.keyboard.press("Tab")
    add = tools.locator("button[name=add-tool]")
    expect(add).to_be_focused()
    style, width, colour = add.evaluate(OUTLINE)
    assert (style, colour) == ("solid", accent) and width >= 2, (style, width, colour)
