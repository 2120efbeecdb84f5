"""In chromium, a shared output holding a remote image makes the visitor's browser call no
other host: the page's Content-Security-Policy blocks it."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from runs.services import outputs
from tests.outputs.conftest import echo_flow
from tests.runs.harness import run_to_rest

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_a_shared_outputs_remote_image_is_never_requested(browser, stack, org, transactional_db):
    base, _ = stack
    text = "# Report\n\n![pixel](https://evil.example/p.png) and ![b](http://127.0.0.2:9/t.gif)"
    run = run_to_rest(echo_flow(org), {"text": text})
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
