"""An agent step reads as a conversation in the run view: model turns, tool call cards with their
arguments, tool results; and a model's answer grows live from agent_delta frames until its
stored turn replaces it. In chromium, against daphne and a real worker."""

from __future__ import annotations

import json
from functools import partial

import pytest
from django.conf import settings
from playwright.sync_api import expect

from orchestrator.services.orchestrations import create_orchestration
from runs.engine.redaction import Redactor
from runs.models import Run
from runs.models import TriggerKind as RunTrigger
from runs.services import events, lifecycle
from runs.services.deltas import DeltaSink

pytestmark = [pytest.mark.browser, pytest.mark.worker]
LIVE = 30_000  # ms

FINAL = "The status page is out of reach: <b>not bold</b>, and nothing to report."


def flow(org):
    return create_orchestration(
        org,
        {
            "name": "Checks in",
            "status": "active",
            "definition": {
                "nodes": [
                    {
                        "id": "look",
                        "type": "agent",
                        "config": {
                            "agent": {"model": "builtin/script", "tools": ["http_get"]},
                            "script": [
                                {
                                    "tool": "http_get",
                                    "args": {
                                        "url": "http://127.0.0.1:9/status",
                                        "headers": {"Accept": "application/json"},
                                    },
                                },
                                FINAL,
                            ],
                            "prompt": "Is the service up?",
                        },
                    },
                    {"id": "ask", "type": "human_input", "config": {"prompt": "Draft a reply?"}},
                    {
                        "id": "draft",
                        "type": "agent",
                        "config": {"agent": {"model": "builtin/echo"}, "prompt": "Draft."},
                    },
                ],
                "edges": [
                    {"source": "look", "target": "ask"},
                    {"source": "ask", "target": "draft"},
                ],
            },
        },
    )


def test_an_agent_steps_turns_and_tool_calls_read_as_a_conversation_after_a_reload(page, org):
    run, _ = lifecycle.fire(flow(org), {}, trigger_kind=RunTrigger.API)
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "paused", timeout=LIVE)
    for _ in range(2):  # live, then from the stored events alone
        page.click('.gnode[data-node-id="look"]')
        trace = page.locator("#step-panel .agent-trace")
        turns = trace.locator(".msg.turn")
        expect(turns).to_have_count(2)
        expect(turns.first).to_contain_text("Turn 1")
        expect(turns.first).to_contain_text("asks for http_get")
        call = trace.locator(".msg.tool-call")
        expect(call).to_contain_text("http_get")
        args = json.loads(call.locator("pre").inner_text())
        assert args == {
            "url": "http://127.0.0.1:9/status",
            "headers": {"Accept": "application/json"},
        }
        assert "\n  " in call.locator("pre").inner_text()  # indented, not one line of JSON
        expect(trace.locator(".msg.tool-result.bad")).to_contain_text("http_get")
        expect(trace.locator(".msg.tool-result.bad pre")).to_contain_text("internal address")
        # The model's text is text: markup in it is shown, never applied.
        expect(turns.nth(1).locator(".msg-text")).to_have_text(FINAL)
        expect(trace.locator("b")).to_have_count(0)
        expect(page.locator("#step-panel")).to_contain_text("Agent turns (2) and tool calls (1)")
        page.reload()


@pytest.mark.skipif(not settings.REDIS_URL, reason="deltas need the Redis channel layer")
def test_an_answer_grows_from_deltas_until_its_stored_turn_replaces_it(page, org):
    run, _ = lifecycle.fire(flow(org), {}, trigger_kind=RunTrigger.API)
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "paused", timeout=LIVE)
    expect(page.locator("#live")).to_have_text("live")
    page.click('.gnode[data-node-id="draft"]')
    trace = page.locator("#step-panel .conversation")
    expect(trace).to_contain_text("None yet.")

    # What the agent loop records and streams for the step, played from here.
    events.append_now(
        run.pk,
        "agent_turn",
        "draft",
        turn=1,
        model="openai/gpt-5.5",
        content="",
        tool_calls=["http_get"],
        tokens={"input": 412, "output": 38},
        duration_ms=840,
    )
    events.append_now(
        run.pk,
        "tool_execution",
        "draft",
        tool_name="http_get",
        args={"url": "https://status.example.com/api/v2/summary.json"},
    )
    events.append_now(
        run.pk,
        "tool_result",
        "draft",
        tool_name="http_get",
        ok=True,
        preview='{"status": {"indicator": "minor", "description": "Partially degraded"}}',
        duration_ms=212,
    )
    expect(trace.locator(".msg.tool-result.ok")).to_contain_text("Partially degraded")

    sink = DeltaSink("draft", partial(events.publish_delta, run.pk), Redactor(), later=events.later)
    live = trace.locator(".msg.turn.streaming")
    sink(2, "Hello team, the status page says ")
    sink.flush()
    expect(live.locator(".msg-text")).to_have_text("Hello team, the status page says ")
    expect(live).to_contain_text("Turn 2")
    expect(live).to_contain_text("writing…")
    sink(2, "partially degraded: the API answers slowly")
    sink.flush()
    expect(live.locator(".msg-text")).to_have_text(
        "Hello team, the status page says partially degraded: the API answers slowly"
    )
    sink(2, " <i>for now</i>.")
    sink.flush()
    expect(live.locator(".msg-text")).to_contain_text("slowly <i>for now</i>.")
    expect(trace.locator("i")).to_have_count(0)  # text, never markup

    whole = "Hello team, the status page says partially degraded: the API answers slowly for now."
    sink.close()
    events.append_now(
        run.pk,
        "agent_turn",
        "draft",
        turn=2,
        model="openai/gpt-5.5",
        content=whole,
        tool_calls=[],
        tokens={"input": 520, "output": 21},
        duration_ms=1310,
    )
    expect(live).to_have_count(0)
    turns = trace.locator(".msg.turn")
    expect(turns).to_have_count(2)
    expect(turns.nth(1).locator(".msg-text")).to_have_text(whole)

    # A delta of that turn arriving late does not bring the growing text back.
    events.publish_delta(run.pk, {"step_id": "draft", "turn": 2, "text": " late"})
    events.append_now(run.pk, "approval_escalated", "", note="a marker after the late delta")
    expect(page.locator("#timeline li.approval_escalated")).to_have_count(1)
    expect(live).to_have_count(0)
    assert Run.objects.get(pk=run.pk).status == "paused"
