"""The editor and the live run view in chromium, against daphne and a real worker."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from approvals.models import Approval
from approvals.services import decide
from orchestrator.models import Orchestration, Trigger
from orchestrator.services.orchestrations import create_orchestration, update_orchestration
from runs.models import Run
from runs.models import TriggerKind as RunTrigger
from runs.services import lifecycle
from tests.worker.conftest import wait_until

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

    # The declared input gets a default in the inspector (an empty spot of the canvas shows the
    # orchestration's form); the run form starts from it, and saves it first.
    canvas = page.locator("#canvas").bounding_box()
    page.mouse.click(canvas["x"] + 15, canvas["y"] + canvas["height"] - 15)
    topic = page.locator('#tab-inspector [data-input="topic"]')
    topic.locator(".field", has_text="Default").locator("input").fill("tides")
    page.click("#run")
    expect(page.locator("#run-fields input[name=topic]")).to_have_value("tides")
    expect(page.locator("#run-note")).to_have_text("Unsaved changes are saved first.")
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
    orchestration.refresh_from_db()
    assert orchestration.definition["inputs"][0]["default"] == "tides"
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
    canvas = page.locator("#canvas").bounding_box()
    page.click("#save")
    expect(page.locator(".flash.bad")).to_contain_text("Someone else saved")
    # The message floats over the canvas: the graph does not move down under it.
    assert page.locator("#canvas").bounding_box() == canvas
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
    expect(page.locator("#live")).to_have_text("live")
    page.fill("#gate input[name=comment]", "looks good")
    page.click("#approve")
    expect(page.locator('.gnode[data-node-id="ship"]')).to_have_attribute(
        "data-status", "succeeded", timeout=LIVE
    )
    expect(review).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#gate")).to_be_hidden()
    expect(page.locator("#live")).to_have_text("up to date")  # not "live" once it cannot change
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.output == "shipped"


def test_a_run_and_a_step_that_have_not_ended_show_how_long_they_have_been_going(page, org):
    orchestration = create_orchestration(
        org,
        {
            "name": "Waits",
            "status": "active",
            "definition": {
                "nodes": [{"id": "review", "type": "approval", "config": {"prompt": "Ok?"}}],
                "edges": [],
            },
        },
    )
    run, _ = lifecycle.fire(orchestration, {}, trigger_kind=RunTrigger.API)
    page.goto(f"/runs/{run.pk}/")
    review = page.locator('.gnode[data-node-id="review"]')
    expect(review).to_have_attribute("data-status", "waiting", timeout=LIVE)
    header = page.locator("#duration")
    expect(header).to_have_text(re.compile(r"^\d+ s so far$"))
    shown = header.text_content()
    expect(header).not_to_have_text(shown)  # it keeps counting
    page.click('.gnode[data-node-id="review"]')
    step = page.locator("#step-panel .step-duration")
    expect(step).to_have_text(re.compile(r"^\d+ s so far$"))

    page.click("#approve")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "succeeded", timeout=LIVE)
    expect(header).to_have_text(re.compile(r"^[\d.]+ (ms|s)$"))
    expect(step).to_have_text(re.compile(r"^[\d.]+ (ms|s)$"))


def test_an_input_form_is_answered_in_the_run_view_with_typed_values(page, org):
    orchestration = create_orchestration(
        org,
        {
            "name": "Asked",
            "status": "active",
            "definition": {
                "nodes": [
                    {
                        "id": "ask",
                        "type": "human_input",
                        "config": {
                            "prompt": "How many copies?",
                            "fields": [
                                {"name": "copies", "type": "number", "required": True},
                                {"name": "rush", "type": "boolean"},
                                {"name": "paper", "type": "select", "options": ["matte", "gloss"]},
                            ],
                        },
                    },
                ],
                "edges": [],
            },
        },
    )
    run, _ = lifecycle.fire(orchestration, {}, trigger_kind=RunTrigger.API)
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator("#gate")).to_contain_text("How many copies?", timeout=LIVE)
    page.fill("#gate input[name=copies]", "3")
    page.check("#gate input[name=rush]")
    page.select_option("#gate select[name=paper]", "gloss")
    page.click("#approve")
    expect(page.locator('.gnode[data-node-id="ask"]')).to_have_attribute(
        "data-status", "succeeded", timeout=LIVE
    )
    expect(page.locator("#gate")).to_be_hidden()
    step = run.step_runs.get(node_id="ask")
    assert step.output == {"copies": 3, "rush": True, "paper": "gloss"}


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


def test_a_subflow_step_picks_its_orchestration_from_the_organizations(page, org):
    one_step = {"nodes": [{"id": "start", "type": "transform", "config": {"output": "x"}}]}
    create_orchestration(org, {"name": "Child flow", "definition": one_step})
    parent = create_orchestration(org, {"name": "Parent", "definition": one_step})
    page.goto(f"/orchestrations/{parent.pk}/")
    expect(page.locator(".gnode")).to_have_count(1)
    page.click("[data-add-type=subflow]")  # the new step is selected
    field = page.locator("#tab-inspector input[list=orchestration-options]")
    expect(field).to_be_visible()
    options = page.locator("#orchestration-options option")
    expect(options).to_have_count(1)  # not the orchestration being edited
    assert (options.get_attribute("value"), options.text_content()) == ("child-flow", "Child flow")
    field.fill("child-flow")
    page.click("#save")
    expect(page.locator(".flash.ok")).to_contain_text("Saved as version 2")
    parent.refresh_from_db()
    subflow = next(n for n in parent.definition["nodes"] if n["type"] == "subflow")
    assert subflow["config"]["orchestration"] == "child-flow"


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


def card_offset(page, first: str, second: str) -> tuple[float, float]:
    """Where one step's card sits relative to another's, in canvas units (zoom divided out)."""
    return page.evaluate(
        """([first, second]) => {
            const cy = document.getElementById("canvas").graph.cy;
            const a = cy.getElementById(first).position(), b = cy.getElementById(second).position();
            return [b.x - a.x, b.y - a.y];
        }""",
        [first, second],
    )


def test_a_dragged_step_keeps_its_place_after_save_and_reload(page, org):
    # Made through the API without positions: the editor lays it out when it opens.
    orchestration = create_orchestration(
        org,
        {
            "name": "Unplaced",
            "definition": {
                "nodes": [
                    {"id": "a", "type": "transform", "config": {"output": "1"}},
                    {"id": "b", "type": "transform", "config": {"output": "2"}},
                    {"id": "c", "type": "transform", "config": {"output": "3"}},
                ],
                "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}],
            },
        },
    )
    page.goto(f"/orchestrations/{orchestration.pk}/")
    expect(page.locator(".gnode")).to_have_count(3)
    box = page.locator('.gnode[data-node-id="b"]').bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 30)
    page.mouse.down()
    page.mouse.move(box["x"] + 260, box["y"] + 30, steps=10)
    page.mouse.up()
    dropped = card_offset(page, "a", "b")
    assert dropped[0] > 150
    page.click("#save")
    expect(page.locator(".flash.ok")).to_contain_text("Saved as version 2")
    positions = [
        n["position"] for n in Orchestration.objects.get(pk=orchestration.pk).definition["nodes"]
    ]
    assert len({(p["x"], p["y"]) for p in positions}) == 3, positions

    page.reload()
    expect(page.locator(".gnode")).to_have_count(3)
    assert card_offset(page, "a", "b") == pytest.approx(dropped, abs=2)


def test_an_edge_that_skips_a_step_bends_around_it(page, org):
    orchestration = create_orchestration(
        org,
        {
            "name": "Shortcut",
            "definition": {
                "nodes": [
                    {"id": "a", "type": "transform", "config": {"output": "1"}},
                    {"id": "b", "type": "transform", "config": {"output": "2"}},
                    {"id": "c", "type": "transform", "config": {"output": "3"}},
                ],
                "edges": [
                    {"source": "a", "target": "b"},
                    {"source": "b", "target": "c"},
                    {"source": "a", "target": "c", "condition": "output == '1' and true"},
                ],
            },
        },
    )
    page.goto(f"/orchestrations/{orchestration.pk}/")
    expect(page.locator(".gnode")).to_have_count(3)
    clear = page.evaluate(
        """() => {
            const cy = document.getElementById("canvas").graph.cy;
            const box = cy.getElementById("b").boundingBox();
            const edge = cy.edges('[source = "a"][target = "c"]');
            const mid = edge.midpoint();
            const label = edge.boundingBox({ includeEdges: false, includeLabels: true });
            const inside = (x, y) => x >= box.x1 && x <= box.x2 && y >= box.y1 && y <= box.y2;
            const apart = label.x2 <= box.x1 || label.x1 >= box.x2
                || label.y2 <= box.y1 || label.y1 >= box.y2;
            return { line: !inside(mid.x, mid.y), label: apart };
        }"""
    )
    assert clear == {"line": True, "label": True}


def test_a_failed_run_opens_on_the_failed_step_and_says_why_in_words(page, org):
    orchestration = create_orchestration(
        org,
        {
            "name": "Calls home",
            "status": "active",
            "definition": {
                "nodes": [
                    # The page opens while this waits: the panel must move on to what follows.
                    {"id": "wait", "type": "delay", "config": {"seconds": 2}},
                    {
                        "id": "look",
                        "type": "agent",
                        "config": {
                            "agent": {"name": "looker", "model": "builtin/script"},
                            "script": [
                                {"tool": "http_get", "args": {"url": "http://127.0.0.1:9/"}}
                            ],
                            "prompt": "Look.",
                        },
                    },
                    {"id": "call", "type": "http", "config": {"url": "http://127.0.0.1:9/"}},
                ],
                "edges": [
                    {"source": "wait", "target": "look"},
                    {"source": "look", "target": "call"},
                ],
            },
        },
    )
    run, _ = lifecycle.fire(orchestration, {}, trigger_kind=RunTrigger.API)
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator("#step-panel h2")).to_have_text("wait", timeout=LIVE)
    expect(page.locator("#run-status")).to_have_attribute("data-status", "failed", timeout=LIVE)
    panel = page.locator("#step-panel")
    expect(panel.locator("h2")).to_have_text("call")  # nobody clicked: the failed step is shown
    expect(panel.locator(".step-error")).to_contain_text("internal address")
    expect(panel.locator(".step-error")).not_to_contain_text("{")
    expect(page.locator("#output")).to_have_text("No output: the run failed.")
    expect(page.locator("#timeline li.tool_execution")).to_contain_text("http_get")
    expect(page.locator("#timeline li.tool_result")).to_contain_text("http_get failed")


def test_triggers_add_a_webhook_and_a_schedule_and_rotate_the_secret(page, org):
    orchestration = create_orchestration(
        org,
        {
            "name": "Triggered",
            "definition": {"nodes": [{"id": "a", "type": "transform", "config": {"output": "1"}}]},
        },
    )
    page.goto(f"/orchestrations/{orchestration.pk}/")
    page.click(".tab[data-tab=triggers]")
    page.click("#add-webhook")
    webhook = page.locator(".trigger", has_text="webhook")
    expect(webhook.locator("code").first).to_contain_text(f"/api/v1/webhooks/{orchestration.pk}/")
    first_secret = webhook.locator("code.secret").inner_text()
    page.fill("#cron", "30 7 * * 1-5")
    page.fill("#cron-tz", "UTC")
    page.click("#add-schedule")
    schedule = page.locator(".trigger", has_text="schedule")
    expect(schedule.locator(".cron-text")).to_have_text("At 07:30 AM, Monday through Friday")
    # Shown once by the API, but still on screen after the panel was drawn again.
    expect(webhook.locator("code.secret")).to_have_text(first_secret)
    webhook.locator("button", has_text="Rotate secret").click()
    expect(webhook.locator("code.secret")).not_to_have_text(first_secret)
    assert webhook.locator("code.secret").inner_text().startswith("whsec_")
    page.fill("#cron", "61 * * * *")
    page.click("#add-schedule")
    expect(page.locator("#cron-error")).to_contain_text("not a valid cron expression")


def test_a_schedule_is_given_the_input_its_runs_need_and_a_refused_slot_shows_why(page, org):
    orchestration = create_orchestration(
        org,
        {
            "name": "Digest",
            "definition": {
                "inputs": [{"name": "topic", "type": "string", "required": True}],
                "nodes": [
                    {"id": "a", "type": "transform", "config": {"output": "{{ input.topic }}"}}
                ],
            },
        },
    )
    page.goto(f"/orchestrations/{orchestration.pk}/")
    page.click(".tab[data-tab=triggers]")
    expect(page.locator("#cron-input")).to_have_attribute("placeholder", '{"topic":"..."}')
    page.fill("#cron", "0 8 * * *")
    page.click("#add-schedule")
    expect(page.locator("#cron-error")).to_have_text("input.topic: is required")
    page.fill("#cron-input", "{topic: 1}")
    page.click("#add-schedule")
    expect(page.locator("#cron-error")).to_contain_text("Input: not JSON")
    page.fill("#cron-input", '{"topic": "releases"}')
    page.click("#add-schedule")
    schedule = page.locator(".trigger", has_text="schedule")
    expect(schedule).to_contain_text('{"topic":"releases"}')
    assert Trigger.objects.get().input == {"topic": "releases"}

    Trigger.objects.update(state="error", state_detail="The input does not match: input.topic")
    page.reload()
    page.click(".tab[data-tab=triggers]")
    expect(schedule.locator(".status")).to_have_text("error")
    expect(schedule.locator(".trigger-error")).to_have_text("The input does not match: input.topic")


def test_versions_diff_and_restore_and_the_markdown_tab_edits_the_same_definition(page, org):
    orchestration = create_orchestration(
        org,
        {
            "name": "Versioned",
            "definition": {
                "nodes": [
                    {"id": "a", "type": "transform", "name": "First", "config": {"output": "1"}}
                ]
            },
        },
    )
    update_orchestration(
        orchestration,
        {
            "definition": {
                "nodes": [
                    {"id": "a", "type": "transform", "name": "First", "config": {"output": "1"}},
                    {"id": "b", "type": "transform", "name": "Second", "config": {"output": "2"}},
                ],
                "edges": [{"source": "a", "target": "b"}],
            }
        },
        if_match=orchestration.etag,
        replace=False,
    )
    page.goto(f"/orchestrations/{orchestration.pk}/")
    expect(page.locator(".gnode")).to_have_count(2)

    # The inspector's title follows a rename as it is typed.
    box = page.locator('.gnode[data-node-id="a"]').bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.locator("#tab-inspector .field", has_text="Name").first.locator("input").fill("Renamed")
    expect(page.locator("#tab-inspector h2")).to_have_text("Renamed")

    page.click(".tab[data-tab=versions]")
    v1 = page.locator("#tab-versions li[data-version='1']")
    v1.locator("button", has_text="Diff").click()
    expect(page.locator(".version-diff")).to_contain_text("Steps added")
    expect(page.locator(".version-diff")).to_contain_text("b")
    # Unsaved changes are not thrown away without asking.
    page.once("dialog", lambda dialog: dialog.dismiss())
    v1.locator("button", has_text="Restore").click()
    expect(page.locator(".gnode")).to_have_count(2)
    assert Orchestration.objects.get(pk=orchestration.pk).version == 2
    page.once("dialog", lambda dialog: dialog.accept())
    v1.locator("button", has_text="Restore").click()
    expect(page.locator(".flash.ok")).to_contain_text("Restored version 1")
    expect(page.locator(".gnode")).to_have_count(1)
    expect(page.locator("#version")).to_have_text("v3")

    page.click(".tab[data-tab=markdown]")
    source = page.locator("#markdown")
    expect(source).to_have_value(re.compile(r"^# Versioned"))
    source.fill(
        source.input_value() + "\n### shout\n- type: transform\n- after: a\n{{ steps.a.output }}!\n"
    )
    page.click("#apply-markdown")
    expect(page.locator('.gnode[data-node-id="shout"]')).to_be_visible()
    page.click("#save")
    expect(page.locator("#messages .flash.ok")).to_contain_text("Saved as version 4")
    saved = Orchestration.objects.get(pk=orchestration.pk).definition
    assert [n["id"] for n in saved["nodes"]] == ["a", "shout"]


# The next read of the run detail answers, once the test lets it through, what the run looked
# like when the test took `window.oldRun`: an old answer arriving after newer ones.
LATE_OLD_ANSWER = """
(() => {
  const fetch = window.fetch;
  window.holdNextRead = false;
  window.fetch = async (url, init) => {
    const response = await fetch(url, init);
    if (!/\\/api\\/v1\\/runs\\/[0-9a-f-]+$/.test(String(url))) return response;
    window.reads = (window.reads || 0) + 1;
    if (window.holdNextRead) {
      window.holdNextRead = false;
      await new Promise((resolve) => { window.releaseRead = resolve; });
      return new Response(window.oldRun, { status: 200, headers: response.headers });
    }
    return response;
  };
})();
"""


def test_a_late_answer_about_the_run_does_not_paint_over_a_newer_one(page, org, member):
    orchestration = create_orchestration(
        org,
        {
            "name": "Gated twice",
            "status": "active",
            "definition": {
                "nodes": [
                    {"id": "first", "type": "approval", "config": {"prompt": "First?"}},
                    {"id": "second", "type": "approval", "config": {"prompt": "Second?"}},
                ],
                "edges": [{"source": "first", "target": "second"}],
            },
        },
    )
    run, _ = lifecycle.fire(orchestration, {}, trigger_kind=RunTrigger.API)
    page.add_init_script(LATE_OLD_ANSWER)
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator("#gate")).to_contain_text("First?", timeout=LIVE)
    page.evaluate(
        f"""async () => {{
            window.oldRun = await (await fetch("/api/v1/runs/{run.pk}")).text();
            window.holdNextRead = true;
        }}"""
    )
    page.click("#approve")  # the read that follows is held, and will answer the old state
    page.wait_for_function("typeof window.releaseRead === 'function'")
    # Deciding the second gate elsewhere brings events, so a newer read certainly follows the
    # held one, and answers first.
    wait_until(lambda: Approval.objects.filter(run=run, step_id="second").exists())
    decide(Approval.objects.get(run=run, step_id="second").pk, approve=True, user=member)
    expect(page.locator("#progress")).to_have_text("2 / 2 steps", timeout=LIVE)
    page.evaluate("window.releaseRead()")
    page.wait_for_timeout(500)
    expect(page.locator("#progress")).to_have_text("2 / 2 steps")
    expect(page.locator("#gate")).to_be_hidden()
    expect(page.locator('.gnode[data-node-id="first"]')).to_have_attribute(
        "data-status", "succeeded"
    )


def test_an_unpriced_step_shows_its_cost_as_unpriced_never_as_zero(page, org):
    orchestration = create_orchestration(
        org,
        {
            "name": "Local model",
            "status": "active",
            "nodes": [
                {
                    "id": "ask",
                    "type": "agent",
                    "config": {"agent": {"model": "builtin/echo"}, "prompt": "Hi"},
                }
            ],
        },
    )
    run, _ = lifecycle.fire(orchestration, {}, trigger_kind=RunTrigger.API)
    wait_until(lambda: Run.objects.get(pk=run.pk).status == "succeeded")
    # What a run on a model with no known price records (the worker's side is tested in
    # tests/runs/test_prices.py): the step's cost unknown, the run's the priced part.
    run.step_runs.update(cost_usd=None)
    Run.objects.filter(pk=run.pk).update(unpriced=True)
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator("#cost")).to_have_text("$0.0000 + unpriced", timeout=LIVE)
    expect(page.locator("#step-panel h2")).to_have_text("ask", timeout=LIVE)
    expect(page.locator("#step-panel")).to_contain_text("Costunpriced")
