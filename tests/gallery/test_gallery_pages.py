"""The public gallery pages: list, detail with the graph picture, and the fork button."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from core.choices import Role
from orchestrator.models import Orchestration
from tests.gallery.conftest import IMG, SCRIPT

pytestmark = pytest.mark.django_db


def page(url: str, client: Client | None = None) -> str:
    response = (client or Client()).get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_the_list_is_public_and_shows_only_public_orchestrations(publish):
    publish("Lead router")
    publish("Internal", is_public=False)
    html = page("/gallery/")
    assert "Lead router" in html
    assert "Internal" not in html
    assert "by Acme" in html
    assert "4 steps" in html and "0 forks" in html
    assert 'name="q"' in html and 'name="tag"' in html


def test_the_list_shows_descriptions_as_text_not_markdown_source(publish):
    publish("Lead router", description="Routes **leads** to [the right team](https://x.test).")
    html = page("/gallery/")
    assert '<p class="gallery-summary">Routes leads to the right team.</p>' in html
    assert "**leads**" not in html


def test_the_list_searches_and_filters_by_tag(publish):
    publish("Lead router")
    publish("Churn radar", tags=["retention"], description="Spots churn early.")
    assert "Lead router" not in page("/gallery/?tag=retention")
    html = page("/gallery/?q=churn")
    assert "Churn radar" in html and "Lead router" not in html
    assert "Nothing in the gallery matches these filters" in page("/gallery/?q=zzz")


def test_the_list_is_paginated(publish):
    for index in range(26):
        publish(f"Flow {index:02d}")
    first, second = page("/gallery/"), page("/gallery/?page=2")
    assert first.count("data-orchestration-id=") == 24
    assert second.count("data-orchestration-id=") == 2
    assert "Page 1 of 2" in first and 'href="?page=2"' in first


def test_the_detail_draws_the_graph_when_the_definition_is_public(publish):
    orchestration = publish("Lead router")
    html = page(f"/gallery/{orchestration.pk}/")
    assert "<svg" in html
    for node_id in ("research", "check", "notify", "report"):
        assert f'data-node-id="{node_id}"' in html
    assert html.count('class="edge') == 4
    assert 'class="edge conditional"' in html
    assert "<strong>leads</strong>" in html  # the description is rendered markdown
    assert 'by <strong class="gallery-org">Acme</strong>' in html
    assert "data-fork-count>0<" in html


def test_nodes_are_laid_out_in_layers_by_depth(publish):
    html = page(f"/gallery/{publish().pk}/")
    rows = {
        node: int(y)
        for node, y in re.findall(r'data-node-id="(\w+)" transform="translate\(\d+,(\d+)\)"', html)
    }
    assert rows["research"] < rows["check"] == rows["notify"] < rows["report"]


def test_the_detail_without_a_public_definition_shows_only_the_step_count(publish):
    orchestration = publish("Churn radar", public_definition=False)
    html = page(f"/gallery/{orchestration.pk}/")
    assert "<svg" not in html
    assert "data-node-id" not in html
    assert "data-steps>4<" in html
    assert "data-fork-button" not in html and "Sign in to fork" not in html


def test_a_private_orchestration_has_no_page(publish):
    orchestration = publish(is_public=False)
    assert Client().get(f"/gallery/{orchestration.pk}/").status_code == 404


def test_signed_out_visitors_are_asked_to_sign_in_to_fork(publish):
    orchestration = publish()
    html = page(f"/gallery/{orchestration.pk}/")
    assert f'href="/login/?next=%2Fgallery%2F{orchestration.pk}%2F"' in html
    assert "Sign in to fork" in html
    assert "data-fork-button" not in html


def test_the_fork_button_copies_it_and_opens_the_editor(publish, browser, other_org):
    orchestration = publish()
    client = browser()
    html = page(f"/gallery/{orchestration.pk}/", client)
    assert f'action="/gallery/{orchestration.pk}/fork/"' in html and "data-fork-button" in html
    response = client.post(f"/gallery/{orchestration.pk}/fork/")
    forked = Orchestration.objects.get(forked_from=orchestration)
    assert response.status_code == 302
    assert response["Location"] == f"/orchestrations/{forked.pk}/"
    assert forked.organization == other_org
    orchestration.refresh_from_db()
    assert orchestration.fork_count == 1


def test_forking_from_the_page_needs_an_editor_and_a_public_definition(publish, browser):
    hidden = publish(public_definition=False)
    assert browser().post(f"/gallery/{hidden.pk}/fork/").status_code == 404
    shown = publish("Shown")
    assert browser(Role.VIEWER, None).post(f"/gallery/{shown.pk}/fork/").status_code == 403
    response = Client().post(f"/gallery/{shown.pk}/fork/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not Orchestration.objects.filter(forked_from__isnull=False).exists()


def test_pages_never_show_webhook_tokens_secrets_or_credentials(publish):
    shown, hidden = publish("Lead router"), publish("Churn radar", public_definition=False)
    pages = [page("/gallery/"), page(f"/gallery/{shown.pk}/"), page(f"/gallery/{hidden.pk}/")]
    for html in pages:
        for secret in shown.secrets + hidden.secrets:
            assert secret not in html


def test_javascript_links_in_a_description_are_not_links(publish):
    hostile = "[a](javascript:alert(1)) [b](<javascript:alert(2)>) <a href='javascript:x'>c</a>"
    orchestration = publish(description=f"{hostile} [ok](https://example.com)")
    for html in (page("/gallery/"), page(f"/gallery/{orchestration.pk}/")):
        assert not re.search(r"<a[^>]*href=[\"']?\s*javascript", html, re.I)
    detail = page(f"/gallery/{orchestration.pk}/")
    assert '<a href="https://example.com" rel="noopener noreferrer">ok</a>' in detail


def test_names_descriptions_tags_and_node_names_are_escaped(publish):
    orchestration = publish(
        f"Evil {SCRIPT}",
        description=f"Hello {IMG} and {SCRIPT}",
        tags=[SCRIPT, IMG],
        icon=IMG,
        icon_color="red;background:url(x)<b>",
    )
    definition = dict(orchestration.definition)
    definition["nodes"][0]["name"] = SCRIPT
    Orchestration.objects.filter(pk=orchestration.pk).update(definition=definition)
    for html in (page("/gallery/"), page(f"/gallery/{orchestration.pk}/")):
        assert SCRIPT not in html
        assert IMG not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
        assert "background:url" not in html
