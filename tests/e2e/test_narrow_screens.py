"""The pages on a phone-width screen (390 px): nothing makes the page wider than the screen, the
editor's canvas and its Run button are on screen, and the run view's graph has room."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from orchestrator.services.orchestrations import create_orchestration
from runs.models import TriggerKind as RunTrigger
from runs.services import lifecycle

pytestmark = [pytest.mark.browser, pytest.mark.worker]

PHONE = {"width": 390, "height": 844}


def _flow(org):
    return create_orchestration(
        org,
        {
            "name": "A flow with a rather long name for a small screen",
            "status": "active",
            "definition": {
                "nodes": [
                    {
                        "id": "ask",
                        "type": "agent",
                        "config": {"agent": {"model": "builtin/echo"}, "prompt": "Hi"},
                    }
                ]
            },
        },
    )


def _overflow(page) -> int:
    """How many pixels the page is wider than the screen (0 when it fits)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def test_no_page_is_wider_than_a_phone_and_the_editor_and_run_view_have_room(page, org):
    orchestration = _flow(org)
    run, _ = lifecycle.fire(orchestration, {}, trigger_kind=RunTrigger.API)
    page.set_viewport_size(PHONE)
    for url in ("/", "/approvals/", "/mcp-servers/", "/templates/", f"/runs/{run.pk}/"):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        assert _overflow(page) == 0, url
    # The run view: the graph and the step panel one above the other, each the screen's width.
    expect(page.locator("#run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=30_000
    )
    graph = page.locator(".canvas-card").bounding_box()
    assert graph["width"] > 300, graph
    # A timeline entry's detail wraps below it rather than into a column a few letters wide.
    details = page.locator(".timeline li > .muted:last-child")
    expect(details.first).to_be_attached()
    widths = details.evaluate_all("els => els.map(e => e.getBoundingClientRect().width)")
    assert min(widths) >= 100, widths
    # The sign-out button stays on screen.
    out = page.get_by_role("button", name="Sign out").bounding_box()
    assert out["x"] + out["width"] <= PHONE["width"], out

    page.goto(f"/orchestrations/{orchestration.pk}/")
    expect(page.locator('.gnode[data-node-id="ask"]')).to_be_visible()
    assert _overflow(page) == 0
    canvas = page.locator("#canvas").bounding_box()
    assert canvas["width"] > 300 and canvas["height"] > 200, canvas
    run_button = page.locator("#run").bounding_box()
    assert run_button["x"] + run_button["width"] <= PHONE["width"], run_button
    # A step picked on the canvas opens in the inspector below it.
    card = page.locator('.gnode[data-node-id="ask"]').bounding_box()
    page.mouse.click(card["x"] + card["width"] / 2, card["y"] + card["height"] / 2)
    expect(page.locator("#tab-inspector select[name=model]")).to_be_attached()
    page.locator("#tab-inspector select[name=model]").scroll_into_view_if_needed()
    picker = page.locator("#tab-inspector select[name=model]").bounding_box()
    assert picker["x"] >= 0 and picker["x"] + picker["width"] <= PHONE["width"], picker
