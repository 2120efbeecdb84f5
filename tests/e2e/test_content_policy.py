"""In chromium, a shared output holding a remote image makes the visitor's browser call no
other host: the page's Content-Security-Policy blocks it."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from orchestrator.services.orchestrations import create_orchestration
from orchestrator.services.starters import load_starters
from runs.models import Run
from runs.services import lifecycle, outputs
from tests.outputs.conftest import echo_flow
from tests.worker.conftest import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_a_shared_outputs_remote_image_is_never_requested(browser, stack, org, transactional_db):
    base, _ = stack
    text = "# Report\n\n![pixel](https://evil.example/p.png) and ![b](http://127.0.0.2:9/t.gif)"
    # The stack's worker runs it: draining in this process as well would race that worker for
    # the step and could return while the worker still held it.
    run, _ = lifecycle.fire(echo_flow(org), {"text": text})
    wait_until(lambda: Run.objects.get(pk=run.pk).status == "succeeded")
    run.refresh_from_db()
    link, _ = outputs.share(run)

    visitor = browser.new_context(base_url=base)
    elsewhere: list[str] = []

    def only_here(route) -> None:
        # Nothing may leave for another host; record what tried, and never reach it.
        if urlsplit(route.request.url).netloc != urlsplit(base).netloc:
            elsewhere.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    visitor.route("**/*", only_here)
    page = visitor.new_page()
    assert page.goto(f"/s/{link.token}").status == 200
    page.wait_for_load_state("networkidle")
    assert page.locator(".shared-output img").count() == 2
    assert elsewhere == []
    visitor.close()


def _violations(page) -> list[str]:
    found: list[str] = []
    page.on(
        "console",
        lambda message: (
            found.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return found


NOTHING = {"output": "x"}


def test_the_gallerys_tag_filter_applies_itself_under_the_policy(
    browser, stack, org, transactional_db
):
    base, _ = stack
    for name, tag in (("Ops digest", "ops"), ("Sales digest", "sales")):
        create_orchestration(
            org,
            {
                "name": name,
                "is_public": True,
                "tags": [tag],
                "status": "active",
                "definition": {"nodes": [{"id": "a", "type": "transform", "config": NOTHING}]},
            },
        )
    visitor = browser.new_context(base_url=base)
    page = visitor.new_page()
    violations = _violations(page)
    page.goto("/gallery/")
    with page.expect_navigation():
        page.select_option("select[name=tag]", "ops")
    assert "tag=ops" in page.url
    expect(page.locator("text=Ops digest")).to_be_visible()
    expect(page.locator("text=Sales digest")).to_have_count(0)
    assert violations == []
    visitor.close()


def test_the_templates_category_filter_applies_itself(page):
    load_starters()
    violations = _violations(page)
    page.goto("/templates/")
    category = page.locator("select[name=category] option").nth(1).get_attribute("value")
    with page.expect_navigation():
        page.select_option("select[name=category]", category)
    assert f"category={category}" in page.url.replace("+", " ").replace("%20", " ")
    assert violations == []
