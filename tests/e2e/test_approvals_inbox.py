"""The approvals inbox in chromium: the seed's run -> human gate -> resume, and live removal."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from approvals.models import Approval
from approvals.services import decide
from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run
from runs.models import TriggerKind as RunTrigger
from runs.services import lifecycle
from tests.worker.conftest import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.worker]
LIVE = 30_000


def research_report(org):
    """The seed's research report: an agent drafts, a person decides with a form, then publish."""
    return create_orchestration(
        org,
        {
            "name": "Research report",
            "status": "active",
            "definition": {
                "inputs": [{"name": "topic", "type": "string", "required": True}],
                "nodes": [
                    {
                        "id": "research",
                        "type": "agent",
                        "config": {
                            "agent": {"name": "researcher", "model": "builtin/echo"},
                            "prompt": "Research {{ input.topic }}",
                        },
                    },
                    {
                        "id": "ask",
                        "type": "human_input",
                        "config": {
                            "prompt": "Publish this research?",
                            "fields": [
                                {
                                    "name": "decision",
                                    "type": "select",
                                    "options": "approve,reject",
                                    "required": True,
                                },
                                {"name": "notes", "type": "textarea"},
                            ],
                            "agent_context": "Draft: {{ steps.research.output }}",
                        },
                    },
                    {
                        "id": "article",
                        "type": "transform",
                        "output_key": "article",
                        "config": {"output": "# Article\n{{ steps.ask.output.notes }}"},
                    },
                ],
                "edges": [
                    {"source": "research", "target": "ask"},
                    {"source": "ask", "target": "article"},
                ],
            },
        },
    )


def paused(run: Run) -> bool:
    run.refresh_from_db()
    return run.status == "paused"


def test_the_seed_example_is_answered_in_the_inbox(page, org):
    run, _ = lifecycle.fire(
        research_report(org), {"topic": "AI orchestration trends"}, trigger_kind=RunTrigger.API
    )
    wait_until(lambda: paused(run))
    page.goto("/approvals/")
    card = page.locator(f'[data-approval-id="{Approval.objects.get(run=run).pk}"]')
    expect(card).to_contain_text("Publish this research?")
    expect(card).to_contain_text("Draft: ")
    expect(card).to_contain_text("AI orchestration trends")

    card.locator("[data-action=approve]").click()  # no decision chosen: refused per field
    expect(card.locator('[data-field-error="decision"]')).to_have_text("is required")
    expect(card.locator("[data-card-error]")).to_have_text("Check the fields marked above.")
    assert paused(run)

    card.locator("select[name=decision]").select_option("approve")
    card.locator("textarea[name=notes]").fill("Excellent research, publish immediately.")
    card.locator("[data-action=approve]").click()
    expect(card).to_have_count(0, timeout=LIVE)
    wait_until(lambda: Run.objects.get(pk=run.pk).status == "succeeded")
    run.refresh_from_db()
    assert run.shared_state["article"] == "# Article\nExcellent research, publish immediately."
    expect(page.locator("#inbox-empty")).to_be_visible()


def test_an_item_decided_elsewhere_leaves_the_inbox_without_a_reload(page, org, member):
    first, _ = lifecycle.fire(research_report(org), {"topic": "one"}, trigger_kind=RunTrigger.API)
    second, _ = lifecycle.fire(
        Run.objects.get(pk=first.pk).orchestration, {"topic": "two"}, trigger_kind=RunTrigger.API
    )
    wait_until(lambda: paused(first) and paused(second))
    page.goto("/approvals/")
    cards = page.locator("[data-approval-id]")
    expect(cards).to_have_count(2)
    decide(
        Approval.objects.get(run=first).pk,
        approve=False,
        user=member,
        comment="not now",
    )
    expect(cards).to_have_count(1, timeout=LIVE)
    expect(
        page.locator(f'[data-approval-id="{Approval.objects.get(run=second).pk}"]')
    ).to_be_visible()


def test_the_inbox_says_who_may_decide_and_refuses_others(page, org, member, editors):
    """`approvers` shows on the card; someone else's click is refused (403) and changes nothing."""
    editors("boss")
    gated = create_orchestration(
        org,
        {
            "name": "Boss only",
            "status": "active",
            "definition": {
                "nodes": [
                    {
                        "id": "sign_off",
                        "type": "approval",
                        "config": {"prompt": "Sign off?", "approvers": ["boss"]},
                    }
                ],
                "edges": [],
            },
        },
    )
    run, _ = lifecycle.fire(gated, {}, trigger_kind=RunTrigger.API)
    wait_until(lambda: paused(run))
    approval = Approval.objects.get(run=run)
    page.goto("/approvals/")
    card = page.locator(f'[data-approval-id="{approval.pk}"]')
    expect(card.locator("[data-deciders]")).to_have_text("Only boss may decide.")
    card.locator("[data-action=approve]").click()
    expect(card).to_contain_text("Only boss may decide this approval.")
    approval.refresh_from_db()
    assert approval.status == "pending"
    assert paused(run)


def test_the_nav_badge_counts_open_approvals_without_a_reload(page, org, member):
    """A gate opened elsewhere shows within a poll; one decided on the page, at once."""
    flow = research_report(org)
    first, _ = lifecycle.fire(flow, {"topic": "one"}, trigger_kind=RunTrigger.API)
    wait_until(lambda: paused(first))
    page.goto(f"/runs/{first.pk}/")
    badge = page.locator("[data-pending-count]")
    expect(badge).to_have_text("1")

    second, _ = lifecycle.fire(flow, {"topic": "two"}, trigger_kind=RunTrigger.API)
    wait_until(lambda: paused(second))
    expect(badge).to_have_text("2", timeout=LIVE)

    page.locator("#gate select[name=decision]").select_option("approve")
    page.click("#approve")
    expect(badge).to_have_text("1", timeout=3_000)
    decide(Approval.objects.get(run=second).pk, approve=False, user=member, comment="no")
    expect(badge).to_be_hidden(timeout=LIVE)
