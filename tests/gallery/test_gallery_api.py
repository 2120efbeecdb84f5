"""GET /gallery and /gallery/{id}: public orchestrations for anyone, and nothing secret."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from orchestrator.models import Orchestration

pytestmark = pytest.mark.django_db

ITEM_KEYS = {
    "id",
    "slug",
    "name",
    "description",
    "icon",
    "icon_color",
    "tags",
    "organization",
    "steps",
    "forks",
    "updated_at",
}


@pytest.fixture
def shelf(publish):
    shown = publish("Lead router")
    hidden_definition = publish("Churn radar", public_definition=False, tags=["retention"])
    private = publish("Internal", is_public=False)
    deleted = publish("Gone")
    Orchestration.objects.filter(pk=deleted.pk).update(deleted_at=timezone.now())
    return {"shown": shown, "hidden": hidden_definition, "private": private, "deleted": deleted}


def test_anyone_can_list_public_orchestrations_and_only_those(shelf):
    response = APIClient().get("/api/v1/gallery")
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    assert {i["name"] for i in body["items"]} == {"Lead router", "Churn radar"}


def test_items_have_the_contract_fields_and_the_definition_only_when_public(shelf):
    items = {i["name"]: i for i in APIClient().get("/api/v1/gallery").json()["items"]}
    assert set(items["Churn radar"]) == ITEM_KEYS
    assert set(items["Lead router"]) == ITEM_KEYS | {"definition"}
    item = items["Lead router"]
    assert item["organization"] == "Acme"
    assert item["tags"] == ["sales", "routing"]
    assert (item["steps"], item["forks"]) == (4, 0)
    assert item["slug"] == "lead-router"


def test_the_detail_shows_one_public_orchestration(shelf):
    client = APIClient()
    shown = client.get(f"/api/v1/gallery/{shelf['shown'].pk}").json()
    assert shown["name"] == "Lead router" and "definition" in shown
    hidden = client.get(f"/api/v1/gallery/{shelf['hidden'].pk}").json()
    assert "definition" not in hidden


@pytest.mark.parametrize("which", ["private", "deleted"])
def test_a_private_or_deleted_orchestration_is_404(shelf, which):
    response = APIClient().get(f"/api/v1/gallery/{shelf[which].pk}")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_malformed_id_is_404(shelf):
    assert APIClient().get("/api/v1/gallery/lead-router").status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("tag=retention", {"Churn radar"}),
        ("tag=sales", {"Lead router"}),
        ("q=churn", {"Churn radar"}),
        ("q=LEADS", {"Lead router", "Churn radar"}),
    ],
)
def test_the_gallery_filters_by_tag_and_search(shelf, query, expected):
    items = APIClient().get(f"/api/v1/gallery?{query}").json()["items"]
    assert {i["name"] for i in items} == expected


def test_an_unknown_filter_is_a_validation_error(shelf):
    response = APIClient().get("/api/v1/gallery?organization=acme")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"


def test_the_gallery_is_cursor_paginated(publish):
    for index in range(5):
        publish(f"Flow {index}")
    first = APIClient().get("/api/v1/gallery?limit=3").json()
    assert len(first["items"]) == 3 and first["next_cursor"]
    rest = APIClient().get(f"/api/v1/gallery?limit=3&cursor={first['next_cursor']}").json()
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None


def test_the_public_definition_carries_no_credentials_and_no_secret_headers(shelf):
    definition = APIClient().get(f"/api/v1/gallery/{shelf['shown'].pk}").json()["definition"]
    nodes = {n["id"]: n for n in definition["nodes"]}
    assert "credential" not in nodes["notify"]["config"]
    assert nodes["notify"]["config"]["headers"] == {"X-Team": "growth"}
    assert "credential" not in nodes["check"]["config"]["agent"]
    assert all("credential" not in agent for agent in definition["agents"])
    # The library agent is shown as a declared agent, so the copy is self-contained.
    writer = next(a for a in definition["agents"] if a["name"] == "writer")
    assert writer["system_prompt"] == "You write."
    assert nodes["research"]["config"]["agent"] == "writer"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://ops:hunter2@hooks.example.com/in?team=a&api_key=sk-1&x={{ input.topic }}",
            "https://hooks.example.com/in?team=a&api_key=&x={{ input.topic }}",
        ),
        ("https://example.com/a?access_token=abc#top", "https://example.com/a?access_token=#top"),
        (
            "{{ input.base }}/orgs/{{ input.org }}?page=2",
            "{{ input.base }}/orgs/{{ input.org }}?page=2",
        ),
    ],
)
def test_a_public_url_carries_no_password_or_secret_query_value(publish, url, shown):
    source = publish()
    definition = dict(source.definition)
    definition["nodes"][2]["config"]["url"] = url
    Orchestration.objects.filter(pk=source.pk).update(definition=definition)
    public = APIClient().get(f"/api/v1/gallery/{source.pk}").json()["definition"]
    assert public["nodes"][2]["config"]["url"] == shown


def test_no_response_contains_webhook_tokens_secrets_or_credentials(shelf):
    client = APIClient()
    bodies = [client.get("/api/v1/gallery").content.decode()]
    for key in ("shown", "hidden"):
        bodies.append(client.get(f"/api/v1/gallery/{shelf[key].pk}").content.decode())
    for body in bodies:
        for secret in shelf["shown"].secrets + shelf["hidden"].secrets:
            assert secret not in body
        data = json.loads(body)
        for item in data.get("items", [data]):
            assert "triggers" not in item and "webhook_url" not in json.dumps(item)


def test_making_an_orchestration_public_is_a_patch_of_its_owner(editor):
    created = editor.post(
        "/api/v1/orchestrations",
        {
            "name": "Shared",
            "definition": {"nodes": [{"id": "a", "type": "transform", "config": {"output": 1}}]},
        },
        format="json",
    ).json()
    assert APIClient().get(f"/api/v1/gallery/{created['id']}").status_code == 404
    response = editor.patch(
        f"/api/v1/orchestrations/{created['id']}",
        {"is_public": True, "public_definition": True},
        format="json",
        HTTP_IF_MATCH=created["etag"],
    )
    assert response.status_code == 200
    assert (response.json()["is_public"], response.json()["public_definition"]) == (True, True)
    assert APIClient().get(f"/api/v1/gallery/{created['id']}").json()["definition"]


def test_listing_costs_the_same_queries_for_many_items(publish, django_assert_num_queries):
    publish("One")
    with django_assert_num_queries(3) as first:
        APIClient().get("/api/v1/gallery")
    for index in range(5):
        publish(f"More {index}")
    with django_assert_num_queries(len(first.captured_queries)):
        items = APIClient().get("/api/v1/gallery").json()["items"]
    assert len(items) == 6
