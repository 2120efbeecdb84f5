"""The editor and the live run view in chromium, against daphne and a real worker."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from orchestrator.models import Orchestration
from orchestrator.services.orchestrations import create_orchestration, update_orchestration
from runs.models import Run
from runs.models import TriggerKind as RunTrigger
from runs.services import lifecycle

pytestmark = [pytest.mark.browser, pytest.mark.worker]
LIVE = 30_000  # ms: a run of a few builtin steps takes well under a second on a worker


def test_build_a_three_step_orchestration_save_run_and_watch_it_succeed(page, org):
    page.goto("/orchestrations/new/")
    page.fill("input[name=name]", "Three steps")
    page.click("button[type=submit]")
    expect(page.locator(".gnode")).to_have_count(1)
    editor_url = page.url

    page.click("[data-add-type=transform]")
    page.click("[data-add-type=transform]")
    nodes = page.locator(".gnode")
    expect(nodes).to_have_count(3)
    expect(page.locator("#dirty")).to_be_visible()

    # The newest step is selected: give it a real template in the inspector.
    output = page.locator("#tab-inspector textarea").first
    output.fill("Shout: {{ steps.transform_1.output | upper }}")
    page.click("#save")
    expect(page.locator(".flash.ok")).to_contain_text("Saved as version 2")
    orchestration = Orchestration.objects.get(name="Three steps")
    assert [n["id"] for n in orchestration.definition["nodes"]] == [
        "draft",
        "transform_1",
        "transform_2",
    ]
    assert {(e["source"], e["target"]) for e in orchestration.definition["edges"]} == {
        ("draft", "transform_1"),
        ("transform_1", "transform_2"),
    }

    page.click("#run")
    page.fill("#run-fields input[name=topic]", "tides")
    page.click("#run-submit")
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]+/$"))
    for node_id in ("draft", "transform_1", "transform_2"):
        expect(page.locator(f'.gnode[data-node-id="{node_id}"]')).to_have_attribute(
            "data-status", "succeeded", timeout=LIVE
        )
    expect(page.locator("#run-status")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#timeline")).to_contain_text("orchestration complete")
    run = Run.objects.get(orchestration=orchestration)
    assert run.status == "succeeded"
    assert run.output.startswith("Shout: ")
    expect(page.locator("#output")).to_contain_text("Shout:")
    page.click('.gnode[data-node-id="draft"]')
    panel = page.locator("#step-panel")
    expect(panel).to_contain_text("builtin/echo")
    expect(panel).to_contain_text("Agent turns (1)")
    expect(panel.locator(".agent-trace li")).to_contain_text("Turn 1")
    expect(panel).to_contain_text("tides")
    assert page.url != editor_url


def test_a_save_conflict_says_so_and_reload_brings_the_other_version(page, org):
    orchestration = create_orchestration(
        org,
        {
            "name": "Shared",
            "definition": {"nodes": [{"id": "a", "type": "transform", "config": {"output": "1"}}]},
        },
    )
    page.goto(f"/orchestrations/{orchestration.pk}/")
    expect(page.locator(".gnode")).to_have_count(1)
    update_orchestration(
        orchestration,
        {"name": "Renamed elsewhere"},
        if_match=orchestration.etag,
        replace=False,
    )
    page.fill("#name", "My name")
    page.click("#save")
    expect(page.locator(".flash.bad")).to_contain_text("Someone else saved")
    page.click("#reload")
    expect(page.locator("#name")).to_have_value("Renamed elsewhere")
    assert Orchestration.objects.get(pk=orchestration.pk).name == "Renamed elsewhere"


def test_a_pending_approval_is_answered_in_the_run_view(page, org):
    orchestration = create_orchestration(
        org,
        {
            "name": "Gated",
            "status": "active",
            "definition": {
                "nodes": [
                    {"id": "draft", "type": "transform", "config": {"output": "v1"}},
                    {"id": "review", "type": "approval", "config": {"prompt": "Ship v1?"}},
                    {"id": "ship", "type": "transform", "config": {"output": "shipped"}},
                ],
                "edges": [
                    {"source": "draft", "target": "review"},
                    {"source": "review", "target": "ship"},
                ],
            },
        },
    )
    run, _ = lifecycle.fire(orchestration, {}, trigger_kind=RunTrigger.API)
    page.goto(f"/runs/{run.pk}/")
    review = page.locator('.gnode[data-node-id="review"]')
    expect(review).to_have_attribute("data-status", "waiting", timeout=LIVE)
    expect(page.locator("#gate")).to_contain_text("Ship v1?")
    page.fill("#gate input[name=comment]", "looks good")
    page.click("#approve")
    expect(page.locator('.gnode[data-node-id="ship"]')).to_have_attribute(
        "data-status", "succeeded", timeout=LIVE
    )
    expect(review).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#gate")).to_be_hidden()
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.output == "shipped"


def test_connect_two_steps_by_dragging_and_delete_a_step_with_the_keyboard(page, org):
    orchestration = create_orchestration(
        org,
        {
            "name": "Loose",
            "definition": {
                "nodes": [
                    {
                        "id": "a",
                        "type": "transform",
                        "config": {"output": "1"},
                        "position": {"x": 0, "y": 0},
                    },
                    {
                        "id": "b",
                        "type": "transform",
                        "config": {"output": "2"},
                        "position": {"x": 0, "y": 200},
                    },
                    {
                        "id": "c",
                        "type": "transform",
                        "config": {"output": "3"},
                        "position": {"x": 300, "y": 200},
                    },
                ],
            },
        },
    )
    page.goto(f"/orchestrations/{orchestration.pk}/")
    source = page.locator('.gnode[data-node-id="a"]').bounding_box()
    target = page.locator('.gnode[data-node-id="b"]').bounding_box()
    page.mouse.move(source["x"] + source["width"] / 2, source["y"] + source["height"] / 2)
    handle = page.locator(".connect-handle")
    expect(handle).to_be_visible()
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(target["x"] + 40, target["y"] + 20, steps=12)
    page.mouse.move(target["x"] + target["width"] / 2, target["y"] + target["height"] / 2, steps=6)
    page.mouse.up()
    expect(page.locator("#tab-inspector")).to_contain_text("a → b")

    third = page.locator('.gnode[data-node-id="c"]').bounding_box()
    page.mouse.click(third["x"] + third["width"] / 2, third["y"] + third["height"] / 2)
    expect(page.locator("#tab-inspector h2")).to_have_text("c")
    page.keyboard.press("Delete")
    expect(page.locator(".gnode")).to_have_count(2)
    page.click("#save")
    expect(page.locator(".flash.ok")).to_contain_text("Saved")
    saved = Orchestration.objects.get(pk=orchestration.pk).definition
    assert [n["id"] for n in saved["nodes"]] == ["a", "b"]
    assert [(e["source"], e["target"]) for e in saved["edges"]] == [("a", "b")]


def test_validation_errors_are_shown_on_the_step_they_belong_to(page, org):
    orchestration = create_orchestration(
        org,
        {
            "name": "Calls out",
            "definition": {"nodes": [{"id": "a", "type": "transform", "config": {"output": "1"}}]},
        },
    )
    page.goto(f"/orchestrations/{orchestration.pk}/")
    expect(page.locator(".gnode")).to_have_count(1)
    page.click("[data-add-type=http]")
    url = page.locator("#tab-inspector .field", has_text="URL").locator("input")
    url.fill("")
    page.click("#save")
    expect(page.locator(".flash.bad")).to_contain_text("nodes[1].config.url: is required")
    expect(page.locator('.gnode[data-node-id="http_1"]')).to_have_class("gnode invalid")
    expect(page.locator('.gnode[data-node-id="a"]')).to_have_class("gnode")
    assert Orchestration.objects.get(pk=orchestration.pk).version == 1


def test_the_dashboard_filters_as_you_type(page, org):
    for name in ("Invoice digest", "Lead scoring", "Invoice reminders"):
        create_orchestration(
            org,
            {
                "name": name,
                "definition": {
                    "nodes": [{"id": "a", "type": "transform", "config": {"output": "1"}}]
                },
            },
        )
    page.goto("/")
    rows = page.locator("[data-orchestration-id]")
    expect(rows).to_have_count(3)
    page.fill("input[name=q]", "invoice")
    expect(rows).to_have_count(2)
    expect(page).to_have_url(re.compile(r"q=invoice"))
    page.select_option("select[name=status]", "active")
    expect(page.locator("#results")).to_contain_text("No orchestrations match these filters")
