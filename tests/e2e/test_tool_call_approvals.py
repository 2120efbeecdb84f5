"""Approval-gated tool calls in chromium, with a real worker: the inbox and the run view show the
tool and its arguments (as text: the model wrote them), and a decision there lets the agent go
on, holding no worker meanwhile."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from approvals.models import Approval
from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run, StepRun
from runs.models import TriggerKind as RunTrigger
from runs.services import lifecycle
from tests.worker.conftest import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.worker]
LIVE = 30_000
# An inside address: the net guard refuses it without a connection, so the approved call's
# result is that refusal, which the script's model then repeats as its answer.
URL = "http://10.9.9.9/orders/<b>42</b>"


def gated(org, *urls: str):
    calls = [{"name": "http_get", "arguments": {"url": url}} for url in urls or (URL,)]
    agent = {
        "model": "builtin/script",
        "tools": [{"tool": "http_get", "approval": {"timeout_s": 3600}}],
        "script": [{"tool_calls": calls}, None],
    }
    node = {"id": "fetch", "type": "agent", "config": {"agent": agent, "prompt": "Order 42"}}
    return create_orchestration(
        org,
        {"name": "Orders", "status": "active", "definition": {"nodes": [node], "edges": []}},
    )


def waiting(run: Run) -> bool:
    run.refresh_from_db()
    return run.status == "paused"


def test_a_tool_call_is_approved_in_the_inbox(page, org):
    run, _ = lifecycle.fire(gated(org), {}, trigger_kind=RunTrigger.API)
    wait_until(lambda: waiting(run))
    assert StepRun.objects.get(run=run).status == "waiting"  # no worker holds it
    page.goto("/approvals/")
    card = page.locator(f'[data-approval-id="{Approval.objects.get(run=run).pk}"]')
    expect(card).to_contain_text("tool call")
    shown = card.locator("[data-tool-call]")
    expect(shown).to_contain_text("http_get")
    expect(shown).to_contain_text(URL)  # the arguments as text, not markup
    expect(shown.locator("b")).to_have_count(0)
    card.locator("[data-action=approve]").click()
    expect(card).to_have_count(0, timeout=LIVE)
    wait_until(lambda: Run.objects.get(pk=run.pk).status == "succeeded")
    run.refresh_from_db()
    assert "internal addresses are refused" in run.output


def test_a_tool_call_is_denied_from_the_run_view(page, org):
    run, _ = lifecycle.fire(gated(org), {}, trigger_kind=RunTrigger.API)
    wait_until(lambda: waiting(run))
    page.goto(f"/runs/{run.pk}/")
    gate = page.locator("#gate")
    expect(gate.locator("[data-tool-call]")).to_contain_text("http_get", timeout=LIVE)
    expect(gate.locator("[data-tool-call]")).to_contain_text(URL)
    page.fill("#gate input[name=comment]", "wrong order")
    page.click("#gate #deny")
    expect(gate).to_be_hidden(timeout=LIVE)
    wait_until(lambda: Run.objects.get(pk=run.pk).status == "succeeded")
    run.refresh_from_db()
    assert "denied this call: wrong order" in run.output
    # The conversation says the call was denied, not that it failed, and what the model was told.
    denied = page.locator("#step-panel .msg.tool-result.bad")
    expect(denied.locator(".msg-kind")).to_have_text("Denied", timeout=LIVE)
    expect(denied).to_contain_text("denied this call: wrong order")
    expect(page.locator(".timeline")).to_contain_text("http_get denied")


def test_every_call_an_approval_lets_run_is_shown_in_the_inbox_and_the_run_view(page, org):
    second = "http://10.9.9.9/orders/<i>43</i>"
    run, _ = lifecycle.fire(gated(org, URL, second), {}, trigger_kind=RunTrigger.API)
    wait_until(lambda: waiting(run))
    page.goto("/approvals/")
    card = page.locator(f'[data-approval-id="{Approval.objects.get(run=run).pk}"]')
    expect(card.locator("[data-tool-call]")).to_have_count(2, timeout=LIVE)
    expect(card.locator("[data-tool-call]").nth(0)).to_contain_text(URL)
    expect(card.locator("[data-tool-call]").nth(1)).to_contain_text(second)
    page.goto(f"/runs/{run.pk}/")
    shown = page.locator("#gate [data-tool-call]")
    expect(shown).to_have_count(2, timeout=LIVE)
    expect(shown.nth(1)).to_contain_text(second)
    expect(shown.locator("i")).to_have_count(0)
