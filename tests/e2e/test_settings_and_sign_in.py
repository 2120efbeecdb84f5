"""In chromium: a user revokes a token of theirs on the settings page; the sign-in form stops
taking guesses after five failures, and says so."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from rest_framework.test import APIClient

from core.choices import Role
from orchestrator.models import ApiToken
from tests.e2e.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_a_user_revokes_their_token_from_the_settings_page(page, org, member):
    token, raw = ApiToken.issue(org, Role.EDITOR, user=member, name="ada-laptop")
    page.click("nav >> text=Settings")
    row = page.locator(f"tr[data-token-id='{token.pk}']")
    expect(row).to_contain_text("ada-laptop")
    expect(row).to_contain_text(token.prefix)
    row.locator("button", has_text="Revoke").click()
    expect(page.locator(".flash.ok")).to_contain_text("no longer works")
    expect(page.locator(f"tr[data-token-id='{token.pk}']")).to_have_count(0)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/orchestrations").status_code == 401


def test_the_sign_in_form_refuses_the_right_password_after_five_failures(browser, stack, member):
    base, _ = stack
    context = browser.new_context(base_url=base)
    page = context.new_page()
    for _ in range(5):
        page.goto("/login/")
        page.fill("input[name=username]", member.username)
        page.fill("input[name=password]", "not-the-password")
        page.click("button[type=submit]")
    expect(page.locator("#locked-out")).to_contain_text("Too many failed sign-ins")
    page.goto("/login/")
    page.fill("input[name=username]", member.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#locked-out")).to_contain_text("15 minutes")
    page.goto("/settings/")
    expect(page).to_have_url(f"{base}/login/?next=/settings/")
    context.close()
