"""The server-rendered pages: who sees what, and what they render."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from core.choices import Role
from orchestrator.models import Membership, Orchestration
from orchestrator.services.orchestrations import create_orchestration
from runs.models import TriggerKind as RunTrigger
from runs.services import lifecycle
from tests.runs.harness import drain

pytestmark = pytest.mark.django_db
XSS = "<script>alert(1)</script><img src=x onerror=alert(1)>"


def member_client(client, organization, role=Role.EDITOR, name="ada"):
    user = get_user_model().objects.create_user(name, password="pw-long-enough-1")
    Membership.objects.create(user=user, organization=organization, role=role)
    client.force_login(user)
    return client


def orchestration(org, name="Flow", output="hi", **extra):
    return create_orchestration(
        org,
        {
            "name": name,
            "status": "active",
            "definition": {
                "nodes": [{"id": "a", "type": "transform", "config": {"output": output}}]
            },
            **extra,
        },
    )


def test_signed_out_people_are_sent_to_the_login_page(client, org):
    flow = orchestration(org)
    for path in ["/", "/approvals/", f"/orchestrations/{flow.pk}/", "/orchestrations/new/"]:
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


def test_the_dashboard_shows_this_organizations_orchestrations_with_their_last_runs(
    client, org, other_org
):
    mine = orchestration(org, name="Mine")
    orchestration(other_org, name="Theirs")
    for _ in range(3):
        lifecycle.fire(mine, {}, trigger_kind=RunTrigger.API)
    drain()
    page = member_client(client, org).get("/").content.decode()
    assert "Mine" in page and "Theirs" not in page
    assert page.count('<i class="succeeded"') == 3
    assert (
        member_client(client, org, name="bo")
        .get("/?q=nothing")
        .content.decode()
        .count("data-orchestration-id")
        == 0
    )


def test_the_dashboard_reads_a_page_in_a_fixed_number_of_queries(
    client, org, django_assert_max_num_queries
):
    member_client(client, org)
    for index in range(12):
        flow = orchestration(org, name=f"Flow {index}", tags=["a", "b"])
        lifecycle.fire(flow, {}, trigger_kind=RunTrigger.API)
    with django_assert_max_num_queries(12):
        assert client.get("/").status_code == 200


def test_names_and_descriptions_are_escaped(client, org):
    orchestration(org, name=XSS, description=XSS)
    page = member_client(client, org).get("/").content.decode()
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;" in page


def test_new_orchestration_creates_a_draft_and_opens_the_editor(client, org):
    response = member_client(client, org).post("/orchestrations/new/", {"name": "Fresh"})
    created = Orchestration.objects.get(name="Fresh")
    assert response.status_code == 302 and response["Location"] == f"/orchestrations/{created.pk}/"
    assert created.status == "draft" and created.organization == org
    editor = client.get(response["Location"]).content.decode()
    assert f'data-orchestration-id="{created.pk}"' in editor
    assert "vendor/cytoscape/dist/cytoscape.min.js" in editor


def test_a_viewer_cannot_create_and_gets_a_read_only_editor(client, org):
    member_client(client, org, role=Role.VIEWER)
    response = client.post("/orchestrations/new/", {"name": "Nope"})
    assert response.status_code == 200 and b"cannot create" in response.content
    assert not Orchestration.objects.filter(name="Nope").exists()
    flow = orchestration(org)
    assert 'data-can-edit="false"' in client.get(f"/orchestrations/{flow.pk}/").content.decode()


def test_the_editor_opens_by_slug_as_the_api_does(client, org, other_org):
    flow = orchestration(org, name="Weekly report")
    theirs = orchestration(other_org, name="Secret plan")
    member_client(client, org)
    response = client.get(f"/orchestrations/{flow.slug}/")
    assert response.status_code == 302 and response["Location"] == f"/orchestrations/{flow.pk}/"
    for slug in (theirs.slug, "no-such-flow"):
        missing = client.get(f"/orchestrations/{slug}/", HTTP_ACCEPT="text/html")
        assert missing.status_code == 404 and str(theirs.pk) not in missing.content.decode()
    assert client.get("/orchestrations/new/").status_code == 200


def test_another_organizations_editor_run_view_and_outputs_are_not_found(client, org, other_org):
    flow = orchestration(other_org)
    run, _ = lifecycle.fire(flow, {}, trigger_kind=RunTrigger.API)
    member_client(client, org)
    for path in [f"/orchestrations/{flow.pk}/", f"/runs/{run.pk}/", f"/runs/{run.pk}/outputs/"]:
        response = client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 404, path
        assert str(flow.pk) not in response.content.decode()


def test_the_run_view_renders_outputs_as_sanitized_markdown(client, org):
    flow = orchestration(org, output=f"**bold** {XSS} [x](javascript:alert(1))")
    run, _ = lifecycle.fire(flow, {}, trigger_kind=RunTrigger.API)
    drain()
    member_client(client, org)
    assert f'data-run-id="{run.pk}"' in client.get(f"/runs/{run.pk}/").content.decode()
    rendered = client.get(f"/runs/{run.pk}/outputs/").json()
    for html in (rendered["output"], rendered["steps"]["a"]):
        assert "<strong>bold</strong>" in html
        assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
        assert "&lt;script&gt;" in html


def test_a_markdown_output_that_is_json_shows_as_json_not_as_a_paragraph(client, org, editor):
    # A markdown run whose last step answered with an object (an http step, say) has that
    # object as JSON text: rendered as markdown its lines ran into one paragraph of braces.
    flow = orchestration(org, output={"status": 200, "items": [1, 2], "note": "<b>x</b>"})
    run, _ = lifecycle.fire(flow, {}, trigger_kind=RunTrigger.API)
    drain()
    run.refresh_from_db()
    assert run.output_type == "markdown" and run.output.startswith("{\n")
    member_client(client, org)
    rendered = client.get(f"/runs/{run.pk}/outputs/").json()["output"]
    assert rendered.startswith("<pre>{\n  &quot;") and "&quot;status&quot;: 200" in rendered
    assert "&lt;b&gt;x&lt;/b&gt;" in rendered and "<b>" not in rendered
    share = editor.post(f"/api/v1/runs/{run.pk}/share").json()["share_url"]
    page = client.get(share[share.index("/s/") :]).content.decode()
    assert "<pre>{\n  &quot;" in page and "&quot;status&quot;: 200" in page
    # Markdown that merely starts with a bracket is still markdown.
    linked = orchestration(org, name="Linked", output="[the docs](https://example.com) say so")
    run, _ = lifecycle.fire(linked, {}, trigger_kind=RunTrigger.API)
    drain()
    rendered = client.get(f"/runs/{run.pk}/outputs/").json()["output"]
    assert rendered.startswith('<p><a href="https://example.com"')


def test_an_output_shown_as_json_keeps_its_text_unescaped(client, org):
    # The run view wrote `"caf\u00e9"` for "café" (and every non-ASCII letter) in a JSON output.
    flow = orchestration(org, output={"city": "Zürich", "note": "café 東京"})
    run, _ = lifecycle.fire(flow, {}, trigger_kind=RunTrigger.API)
    drain()
    member_client(client, org)
    rendered = client.get(f"/runs/{run.pk}/outputs/").json()
    for html in (rendered["output"], rendered["steps"]["a"]):
        assert "&quot;Zürich&quot;" in html and "café 東京" in html
        assert "\\u" not in html


def test_missing_pages_answer_html_to_browsers_and_json_to_the_api(client):
    page = client.get("/no/such/page/", HTTP_ACCEPT="text/html")
    assert page.status_code == 404 and b"<h1>Not found</h1>" in page.content
    api = client.get("/api/v1/no-such-thing", HTTP_ACCEPT="text/html")
    assert api.status_code == 404 and api.json()["error"] == "not_found"


def test_the_markdown_tab_renders_a_definition_and_rejects_an_invalid_one(editor):
    response = editor.post(
        "/api/v1/orchestrations/render-markdown",
        {
            "name": "Flow",
            "definition": {
                "nodes": [{"id": "a", "type": "transform", "config": {"output": "x"}}],
            },
        },
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["markdown"].startswith("# Flow\n")
    bad = editor.post(
        "/api/v1/orchestrations/render-markdown",
        {"definition": {"nodes": [{"id": "A!", "type": "nope"}]}},
        format="json",
    )
    assert bad.status_code == 400 and bad.json()["error"] == "validation_error"
    assert any(path.startswith("definition.nodes[0]") for path in bad.json()["fields"])


def test_the_dashboard_says_just_now_rather_than_zero_minutes(client, org):
    flow = orchestration(org, name="Fresh")
    lifecycle.fire(flow, {}, trigger_kind=RunTrigger.API)
    page = member_client(client, org).get("/").content.decode()
    row = page[page.index(f'data-orchestration-id="{flow.pk}"') :]
    assert row.count("just now") == 2  # the last run and the last change
    assert "0\xa0minutes" not in page


def test_the_nav_badge_count_is_the_organizations_open_gates_only(client, org, other_org):
    gated = {"nodes": [{"id": "gate", "type": "approval", "config": {"prompt": "Go?"}}]}
    for owner in (org, other_org, other_org):
        flow = create_orchestration(
            owner, {"name": "Gated", "status": "active", "definition": gated}
        )
        lifecycle.fire(flow, {}, trigger_kind=RunTrigger.API)
    drain()
    assert client.get("/approvals/pending-count/").status_code == 302  # signed out
    member_client(client, org)
    assert client.get("/approvals/pending-count/").json() == {"pending": 1}
    assert "data-pending-count>1</span>" in client.get("/").content.decode()
