"""GET /templates, GET /templates/{id} and POST /templates/{id}/instantiate."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from orchestrator.models import Orchestration, StarterTemplate
from orchestrator.services.starters import STARTERS_DIR

pytestmark = pytest.mark.django_db

ITEM_KEYS = {"id", "name", "description", "category", "tags", "steps", "inputs"}


def test_the_list_has_every_starter_with_the_fields_of_the_contract(catalog, viewer):
    response = viewer.get("/api/v1/templates")
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    assert len(body["items"]) == len(list(STARTERS_DIR.glob("*.md")))
    item = next(i for i in body["items"] if i["id"] == "support-triage")
    assert set(item) == ITEM_KEYS
    assert item["name"] == "Support ticket triage"
    assert item["category"] == "Support"
    assert item["tags"] == ["support", "triage", "approval"]
    assert item["steps"] == 6
    assert [i["name"] for i in item["inputs"]] == ["subject", "body", "customer", "plan"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("category=support", {"support-triage"}),
        ("tag=approval", {"support-triage", "incident-runbook"}),
        ("tag=Webhook", {"webhook-summary"}),
        ("q=debate", {"multi-agent-debate"}),
        ("q=nothing-like-this", set()),
    ],
)
def test_the_list_filters_by_category_tag_and_search(catalog, viewer, query, expected):
    items = viewer.get(f"/api/v1/templates?{query}").json()["items"]
    assert {i["id"] for i in items} == expected


def test_a_tag_filter_matches_whole_tags_only(catalog, viewer):
    assert viewer.get("/api/v1/templates?tag=app").json()["items"] == []


def test_the_list_is_cursor_paginated(catalog, viewer):
    first = viewer.get("/api/v1/templates?limit=5").json()
    assert len(first["items"]) == 5 and first["next_cursor"]
    rest = viewer.get(f"/api/v1/templates?limit=5&cursor={first['next_cursor']}").json()
    ids = [i["id"] for i in first["items"] + rest["items"]]
    assert ids == sorted(StarterTemplate.objects.values_list("id", flat=True))


def test_an_unknown_query_parameter_is_a_validation_error(catalog, viewer):
    response = viewer.get("/api/v1/templates?categroy=x")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"


def test_the_detail_adds_definition_markdown_and_triggers(catalog, viewer):
    body = viewer.get("/api/v1/templates/scheduled-digest").json()
    assert set(body) == ITEM_KEYS | {"definition", "markdown", "triggers"}
    assert [n["id"] for n in body["definition"]["nodes"]] == [
        "sections",
        "gather",
        "write_digest",
        "format",
    ]
    assert body["markdown"].startswith("# Scheduled team digest")
    assert body["triggers"] == [
        {"kind": "schedule", "cron_expression": "0 8 * * 1-5", "timezone": "UTC"}
    ]


def test_an_unknown_template_is_404(catalog, viewer, editor):
    response = viewer.get("/api/v1/templates/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert editor.post("/api/v1/templates/no-such-thing/instantiate").status_code == 404


def test_templates_need_a_token(catalog):
    response = APIClient().get("/api/v1/templates")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_instantiate_creates_a_draft_in_the_callers_organization(catalog, editor, org):
    response = editor.post(
        "/api/v1/templates/research-report/instantiate", {"name": "Q3 research"}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert response["ETag"] == f'"{body["etag"]}"'
    assert body["name"] == "Q3 research"
    assert body["slug"] == "q3-research"
    assert body["status"] == "draft"
    assert body["version"] == 1
    assert body["tags"] == ["research", "writing", "report"]
    assert body["metadata"] == {"template": "research-report"}
    assert body["markdown"].startswith("# Research and report")
    assert body["steps"] == 4
    assert body["triggers"] == []
    orchestration = Orchestration.objects.get(pk=body["id"])
    assert orchestration.organization == org
    assert orchestration.description.startswith("Turns a question into a structured report")


def test_instantiate_without_a_name_uses_the_templates_and_keeps_slugs_unique(catalog, editor):
    first = editor.post("/api/v1/templates/incident-runbook/instantiate").json()
    second = editor.post("/api/v1/templates/incident-runbook/instantiate", {}, format="json")
    assert second.status_code == 201
    assert first["name"] == second.json()["name"] == "Incident runbook"
    assert (first["slug"], second.json()["slug"]) == ("incident-runbook", "incident-runbook-2")


def test_instantiate_creates_the_templates_triggers(catalog, editor):
    body = editor.post("/api/v1/templates/webhook-summary/instantiate").json()
    (trigger,) = body["triggers"]
    assert trigger["kind"] == "webhook"
    assert trigger["webhook_url"].startswith(f"/api/v1/webhooks/{body['id']}/")
    assert trigger["signing_secret"].startswith("whsec_")
    again = editor.get(f"/api/v1/orchestrations/{body['id']}").json()
    assert again["triggers"][0]["signing_secret"] is None


def test_instantiate_needs_the_editor_role(catalog, viewer):
    response = viewer.post("/api/v1/templates/research-report/instantiate")
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert Orchestration.objects.count() == 0


def test_instantiate_refuses_unknown_fields(catalog, editor):
    response = editor.post(
        "/api/v1/templates/research-report/instantiate", {"nmae": "x"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["fields"] == {"nmae": ["unknown field"]}


def test_instances_are_only_visible_in_their_organization(catalog, editor, outsider):
    body = editor.post("/api/v1/templates/research-report/instantiate").json()
    assert outsider.get(f"/api/v1/orchestrations/{body['id']}").status_code == 404
    assert outsider.get("/api/v1/templates/research-report").status_code == 200
