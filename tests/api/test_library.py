from __future__ import annotations

import uuid

import pytest
from django.db import connection

from core import crypto
from orchestrator.models import Credential

pytestmark = pytest.mark.django_db


def test_an_agent_is_created_read_updated_and_deleted(editor):
    response = editor.post(
        "/api/v1/agents",
        {
            "name": "writer",
            "model": "builtin/echo",
            "tools": ["http_get"],
            "price": {"input_per_1k": 0.5},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    agent = response.json()
    assert agent["price"] == {"input_per_1k": 0.5, "output_per_1k": 0}
    url = f"/api/v1/agents/{agent['id']}"
    assert editor.patch(url, {"temperature": 0.2}, format="json").json()["temperature"] == 0.2
    replaced = editor.put(url, {"name": "writer", "model": "openai/gpt-4o-mini"}, format="json")
    assert replaced.json()["model"] == "openai/gpt-4o-mini"
    assert editor.delete(url).status_code == 204
    assert editor.get(url).status_code == 404


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "a", "model": "gpt4"}, "model"),
        ({"name": "a", "model": "builtin/nonsense"}, "model"),
        ({"name": "a", "model": "builtin/echo", "tools": ["rm_rf"]}, "tools[0]"),
        ({"name": "a", "model": "builtin/echo", "temperature": 3}, "temperature"),
        ({"name": "a", "model": "builtin/echo", "max_turns": 0}, "max_turns"),
        ({"name": "a", "model": "builtin/echo", "max_tokens": 0}, "max_tokens"),
        ({"name": "a", "model": "builtin/echo", "max_tokens": -1}, "max_tokens"),
        ({"name": "a", "model": "builtin/echo", "max_tokens": "x"}, "max_tokens"),
        ({"name": "a", "model": "builtin/echo", "max_tokens": 1.5}, "max_tokens"),
        ({"name": "a", "model": "builtin/echo", "max_tokens": 200_001}, "max_tokens"),
        (
            {"name": "a", "model": "builtin/echo", "price": {"input_per_1k": -1}},
            "price.input_per_1k",
        ),
        ({"name": "a", "model": "builtin/echo", "credential": "not-a-uuid"}, "credential"),
        ({"name": "a", "model": "builtin/echo", "flavour": "x"}, "flavour"),
        ({"model": "builtin/echo"}, "name"),
    ],
)
def test_invalid_agents_are_refused_with_the_field(editor, payload, field):
    response = editor.post("/api/v1/agents", payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation_error"
    assert field in body["fields"], body


def test_an_agents_max_tokens_round_trips_and_may_be_cleared(editor):
    response = editor.post(
        "/api/v1/agents",
        {"name": "brief", "model": "builtin/echo", "max_tokens": 800},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["max_tokens"] == 800
    url = f"/api/v1/agents/{response.json()['id']}"
    assert editor.get(url).json()["max_tokens"] == 800
    assert editor.patch(url, {"max_tokens": 200_000}, format="json").json()["max_tokens"] == 200_000
    assert editor.patch(url, {"max_tokens": None}, format="json").json()["max_tokens"] is None
    refused = editor.patch(url, {"max_tokens": 200_001}, format="json")
    assert refused.status_code == 400
    assert refused.json()["fields"]["max_tokens"] == [
        "Ensure this value is less than or equal to 200000."
    ]
    plain = {"name": "plain", "model": "builtin/echo"}
    unnamed = editor.post("/api/v1/agents", plain, format="json")
    assert unnamed.json()["max_tokens"] is None


def test_agent_names_are_unique_in_an_org(editor):
    editor.post("/api/v1/agents", {"name": "a", "model": "builtin/echo"}, format="json")
    response = editor.post("/api/v1/agents", {"name": "a", "model": "builtin/echo"}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]["name"] == [
        "'a' is taken: another agent of this organization has that name"
    ]


def test_a_credential_value_is_write_only_and_encrypted_at_rest(editor):
    secret = "sk-canary-4242424242"
    response = editor.post(
        "/api/v1/credentials",
        {"name": "openai", "kind": "api_key", "value": secret},
        format="json",
    )
    assert response.status_code == 201
    assert "value" not in response.json()
    assert secret not in editor.get("/api/v1/credentials").content.decode()
    assert secret not in editor.get(f"/api/v1/credentials/{response.json()['id']}").content.decode()
    stored = Credential.objects.get()
    assert secret not in stored.encrypted_value
    assert crypto.decrypt(stored.encrypted_value) == secret
    with connection.cursor() as cursor:
        cursor.execute("SELECT encrypted_value FROM orchestrator_credential")
        assert secret not in cursor.fetchone()[0]


def test_a_credential_needs_a_value_and_a_known_kind(editor):
    response = editor.post("/api/v1/credentials", {"name": "x", "kind": "magic"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"kind", "value"}


def test_an_agent_may_use_a_credential_of_its_org(editor):
    credential = editor.post(
        "/api/v1/credentials", {"name": "k", "kind": "bearer", "value": "t"}, format="json"
    ).json()
    response = editor.post(
        "/api/v1/agents",
        {"name": "a", "model": "openai/gpt-4o-mini", "credential": credential["id"]},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["credential"] == credential["id"]
    # By its name too, as a step names one; it reads back as its id; null takes it away.
    url = f"/api/v1/agents/{response.json()['id']}"
    assert editor.patch(url, {"credential": None}, format="json").json()["credential"] is None
    named = editor.patch(url, {"credential": "k"}, format="json")
    assert named.status_code == 200 and named.json()["credential"] == credential["id"]
    for wrong in ("nope", 5, str(uuid.uuid4())):
        refused = editor.patch(url, {"credential": wrong}, format="json")
        assert refused.status_code == 400 and "credential" in refused.json()["fields"]


def test_groups_crud(editor):
    group = editor.post("/api/v1/groups", {"name": "Ops"}, format="json").json()
    url = f"/api/v1/groups/{group['id']}"
    assert editor.patch(url, {"description": "d"}, format="json").json()["description"] == "d"
    assert editor.put(url, {"name": "x"}, format="json").status_code == 405
    assert editor.delete(url).status_code == 204


def test_viewers_cannot_create_agents(viewer):
    response = viewer.post("/api/v1/agents", {"name": "a", "model": "builtin/echo"}, format="json")
    assert response.status_code == 403
