"""Issue-level walk-through in chromium: a template used and run, published, seen signed out,
forked from another organization, its output shared, refined and the link revoked."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from core.choices import Role
from orchestrator.models import Membership, Orchestration, Trigger
from orchestrator.services.starters import load_starters
from orchestrator.services.webhooks import secrets_of
from runs.models import Run
from tests.e2e.conftest import PASSWORD
from tests.worker.conftest import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.worker]
LIVE = 30_000


def sign_in(context, username: str):
    page = context.new_page()
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    return page


def refined(run: Run) -> Run:
    """The run once the worker stored the second version of its output, or failed refining it
    (read again: an assertion on it says why the page could not show the new version)."""

    def ended() -> bool:
        again = Run.objects.get(pk=run.pk)
        return again.refine_status == "failed" or again.output_versions.filter(version=2).exists()

    wait_until(ended)
    return Run.objects.get(pk=run.pk)


def test_use_a_template_run_it_publish_fork_and_share(page, browser, stack, org, other_org):
    base, _ = stack
    load_starters()
    page.goto("/templates/")
    card = page.locator("form[action='/templates/research-report/use/']")
    card.locator("button").click()
    page.wait_for_url(re.compile(r"/orchestrations/[0-9a-f-]+/$"))
    expect(page.locator(".gnode").first).to_be_visible()
    mine = Orchestration.objects.get(organization=org)

    page.click("#run")
    page.fill("#run-fields input[name=topic]", "heat pumps")
    page.click("#run-submit")
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]+/$"))
    expect(page.locator("#run-status")).to_have_attribute("data-status", "succeeded", timeout=LIVE)
    run = Run.objects.get(orchestration=mine)
    expect(page.locator("#output")).to_contain_text("heat pumps")

    # Share the output, read it signed out, revoke it.
    page.click("#share")
    link = page.locator("#share-url")
    expect(link).to_be_visible()
    shared_url = link.get_attribute("href")
    visitor = browser.new_context(base_url=base)
    shared = visitor.new_page()
    assert shared.goto(shared_url).status == 200
    expect(shared.locator("body")).to_contain_text("heat pumps")

    # Refine it: a worker rewrites it, and the shared link shows the newest version. The page's
    # first read of the run after asking is lost on the way: the page reads again.
    lost: list[str] = []

    def lose_the_first_read(route):
        if route.request.method == "GET" and not lost:
            lost.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route(f"**/api/v1/runs/{run.pk}", lose_the_first_read)
    page.fill("#refine input[name=prompt]", "Add a closing line: Fin.")
    page.click("#refine button[type=submit]")
    again = refined(run)
    assert again.refine_status == "idle", again.refine_error
    expect(page.locator("#output")).to_contain_text("Add a closing line: Fin.", timeout=LIVE)
    assert lost
    assert shared.goto(shared_url).status == 200
    expect(shared.locator(".shared-output")).to_contain_text("Add a closing line: Fin.")
    expect(shared.locator(".page-head")).to_contain_text("version 2")
    page.click("#unshare")
    expect(page.locator("#share-box")).to_contain_text("revoked")
    assert shared.goto(shared_url).status == 404

    # Publish it in the gallery from the editor.
    page.goto(f"/orchestrations/{mine.pk}/")
    page.check("input[name=is_public]")
    page.check("input[name=public_definition]")
    page.click("#save")
    expect(page.locator(".flash.ok")).to_contain_text("Saved")
    gallery = visitor.new_page()
    gallery.goto("/gallery/")
    gallery.click(f"a[href='/gallery/{mine.pk}/']")
    expect(gallery.locator(f"[data-node-id='{mine.definition['nodes'][0]['id']}']")).to_be_visible()
    expect(gallery.locator("text=Sign in to fork")).to_be_visible()
    assert "heat pumps" not in gallery.content()  # run data never shows in the gallery

    # Someone of another organization forks it.
    stranger = get_user_model().objects.create_user("grace", password=PASSWORD)
    Membership.objects.create(user=stranger, organization=other_org, role=Role.EDITOR)
    theirs = browser.new_context(base_url=base, viewport={"width": 1280, "height": 800})
    other = sign_in(theirs, "grace")
    other.goto(f"/gallery/{mine.pk}/")
    other.click("[data-fork-button]")
    other.wait_for_url(re.compile(r"/orchestrations/[0-9a-f-]+/$"))
    fork = Orchestration.objects.get(organization=other_org)
    assert fork.forked_from_id == mine.pk and fork.status == "draft"
    assert Orchestration.objects.get(pk=mine.pk).fork_count == 1
    expect(other.locator(".gnode")).to_have_count(len(mine.definition["nodes"]))
    assert run.status == "succeeded"
    visitor.close()
    theirs.close()


def test_a_template_with_a_webhook_shows_its_signing_secret_once_and_the_secret_works(page, org):
    load_starters()
    page.goto("/templates/")
    page.locator("form[action='/templates/webhook-summary/use/'] button").click()
    page.wait_for_url(re.compile(r"/orchestrations/[0-9a-f-]+/$"))
    secret = page.locator("#tab-triggers .secret")
    expect(secret).to_be_visible()
    expect(page.locator("#messages")).to_contain_text("shown only once")
    trigger = Trigger.objects.get(orchestration__organization=org, kind="webhook")
    assert secret.inner_text().strip() == secrets_of(trigger)[0]
    # Shown once: a reload no longer has it.
    page.reload()
    page.click(".tab[data-tab=triggers]")
    expect(page.locator("#tab-triggers .trigger")).to_have_count(1)
    expect(page.locator("#tab-triggers .secret")).to_have_count(0)
