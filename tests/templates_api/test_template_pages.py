"""The /templates/ page: browse the catalog and use a template to get a draft."""

from __future__ import annotations

import pytest
from django.test import Client

from core.choices import Role
from orchestrator.models import Orchestration, StarterTemplate

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


def test_the_page_needs_a_signed_in_user(catalog):
    response = Client().get("/templates/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/templates/"


def test_the_page_shows_every_template_as_a_card(catalog, browser):
    html = browser().get("/templates/").content.decode()
    for template in StarterTemplate.objects.all():
        assert f'data-template-id="{template.pk}"' in html
        assert template.name in html
        assert f'action="/templates/{template.pk}/use/"' in html
    assert "Use this template" in html
    assert "6 steps" in html
    assert 'class="tag">approval<' in html
    assert "<code>0 8 * * 1-5</code>" in html


def test_the_page_filters_by_category_and_search(catalog, browser):
    client = browser()
    html = client.get("/templates/?category=Operations").content.decode()
    assert 'data-template-id="incident-runbook"' in html
    assert 'data-template-id="research-report"' not in html
    html = client.get("/templates/?q=debate").content.decode()
    assert html.count("data-template-id=") == 1


def test_using_a_template_redirects_to_the_new_draft_in_the_editor(catalog, browser, org):
    response = browser().post("/templates/support-triage/use/", {"name": "Tier 1 triage"})
    orchestration = Orchestration.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/orchestrations/{orchestration.pk}/"
    assert (orchestration.name, orchestration.status) == ("Tier 1 triage", "draft")
    assert orchestration.organization == org


def test_a_viewer_sees_no_use_button_and_cannot_post(catalog, browser):
    client = browser(Role.VIEWER)
    html = client.get("/templates/").content.decode()
    assert "Use this template" not in html
    assert client.post("/templates/support-triage/use/").status_code == 403
    assert Orchestration.objects.count() == 0


def test_using_an_unknown_template_is_404(catalog, browser):
    assert browser().post("/templates/nope/use/").status_code == 404


def test_the_use_form_needs_post(catalog, browser):
    assert browser().get("/templates/support-triage/use/").status_code == 405


def test_names_descriptions_and_tags_are_escaped(browser):
    StarterTemplate.objects.create(
        id="evil",
        name=f"Evil {SCRIPT}",
        description=f"Looks fine {IMG} and {SCRIPT}",
        category=f"Cat {IMG}",
        tags=[SCRIPT, IMG],
        markdown="# Evil",
        definition={"nodes": [], "edges": [], "inputs": []},
        inputs=[{"name": IMG}],
    )
    html = browser().get("/templates/").content.decode()
    assert SCRIPT not in html
    assert IMG not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
