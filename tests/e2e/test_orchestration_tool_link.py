"""The run view links an agent step to the child run its orchestration tool call started. In
chromium, against daphne and a real worker."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run
from runs.models import TriggerKind as RunTrigger
from runs.services import lifecycle

pytestmark = [pytest.mark.browser, pytest.mark.worker]
LIVE = 30_000  # ms


def test_an_agent_step_links_the_child_run_of_its_tool_call(page, org):
    create_orchestration(
        org,
        {
            "name": "Double",
            "slug": "double",
            "status": "active",
            "definition": {
                "nodes": [{"id": "calc", "type": "transform", "config": {"output": "twice"}}],
                "edges": [],
            },
        },
    )
    agent = {
        "model": "builtin/script",
        "tools": [{"orchestration": "double", "name": "double", "description": "Doubles."}],
        "script": [{"tool": "double", "args": {}}, None],
    }
    flow = create_orchestration(
        org,
        {
            "name": "Asker",
            "status": "active",
            "definition": {
                "nodes": [
                    {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Go"}}
                ],
                "edges": [],
            },
        },
    )
    run, _ = lifecycle.fire(flow, {}, trigger_kind=RunTrigger.API)
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "succeeded", timeout=LIVE)
    child = Run.objects.get(parent_run=run)
    page.click('.gnode[data-node-id="ask"]')
    link = page.locator("#step-panel a.child-run")
    expect(link).to_have_attribute("href", f"/runs/{child.pk}/")
    # The child run's page leads back to the run and the step that started it.
    link.click()
    expect(page).to_have_url(f"{page.url.split('/runs/')[0]}/runs/{child.pk}/", timeout=LIVE)
    parent = page.locator("a.parent-run")
    expect(parent).to_have_attribute("href", f"/runs/{run.pk}/")
    expect(page.locator(".page-head")).to_contain_text("started by step ask of run")
    parent.click()
    expect(page.locator("#run-status")).to_have_attribute("data-status", "succeeded")
    expect(page).to_have_url(f"{page.url.split('/runs/')[0]}/runs/{run.pk}/", timeout=LIVE)


def test_a_read_that_brings_nothing_new_leaves_the_step_panel_as_the_reader_left_it(page, org):
    """The page reads the run again after every frame of its websocket (and when the run ends):
    a read that changed nothing must not rebuild the step panel, which closed an opened "Full
    input", dropped a selection and could swallow a click on the panel's links."""
    sockets = []

    def through(socket):
        socket.connect_to_server()
        sockets.append(socket)

    page.route_web_socket(re.compile(r"/ws/runs/"), through)
    flow = create_orchestration(
        org,
        {
            "name": "Echo",
            "status": "active",
            "definition": {
                "nodes": [
                    {
                        "id": "say",
                        "type": "agent",
                        "config": {"agent": {"model": "builtin/echo"}, "prompt": "Hello"},
                    }
                ],
                "edges": [],
            },
        },
    )
    run, _ = lifecycle.fire(flow, {}, trigger_kind=RunTrigger.API)
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "succeeded", timeout=LIVE)
    page.click('.gnode[data-node-id="say"]')
    # The run's status can come with a frame before the read that brings the ended step: the
    # panel is read once it shows the step's end, its output and its stored turn.
    expect(page.locator("#step-panel .inspector-head .status")).to_have_text(
        "succeeded", timeout=LIVE
    )
    expect(page.locator("#step-panel .step-output")).to_contain_text("Hello")
    expect(page.locator("#step-panel .agent-trace .turn")).to_have_count(1)
    page.click("#step-panel details.step-input summary")
    page.eval_on_selector("#step-panel .inspector-head", "head => { head.dataset.seen = 'yes'; }")

    # A frame with nothing new, as a reconnect brings: the page reads the run again.
    with page.expect_response(lambda response: f"/runs/{run.pk}/outputs/" in response.url):
        sockets[-1].send(json.dumps({"events": [], "status": "succeeded"}))
    page.wait_for_timeout(300)  # the answer is drawn as soon as it arrives

    expect(page.locator("#step-panel details.step-input")).to_have_attribute("open", "")
    expect(page.locator("#step-panel .inspector-head")).to_have_attribute("data-seen", "yes")

    # An event of the step adds to its conversation and leaves the rest of the panel alone.
    sockets[-1].send(
        json.dumps(
            {
                "events": [
                    {
                        "seq": 10**6,
                        "type": "tool_execution",
                        "step_id": "say",
                        "data": {"tool_name": "lookup"},
                    }
                ]
            }
        )
    )
    expect(page.locator("#step-panel .agent-trace .tool-call")).to_have_count(1)
    page.wait_for_timeout(300)
    expect(page.locator("#step-panel .inspector-head")).to_have_attribute("data-seen", "yes")

    # A read where the step changed redraws the panel; the input the reader opened stays open.
    def step_ran_on(route):
        answer = route.fetch()
        body = answer.json()
        body["steps"][0]["duration_ms"] += 1000
        route.fulfill(response=answer, json=body)

    page.route(re.compile(rf"/api/v1/runs/{run.pk}$"), step_ran_on)
    sockets[-1].send(json.dumps({"events": [], "status": "succeeded"}))
    expect(page.locator("#step-panel .inspector-head")).not_to_have_attribute("data-seen", "yes")
    expect(page.locator("#step-panel details.step-input")).to_have_attribute("open", "")
