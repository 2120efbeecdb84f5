"""A number where text belongs is a 400 naming the field, not text made from the number (DRF's
CharField would store `"name": 5` as "5", and the client would never hear of its mistake)."""

from __future__ import annotations

import pytest

from orchestrator.models import Agent, Credential, Group, Orchestration
from tests.api.helpers import field_errors, two_step

pytestmark = pytest.mark.django_db

ORCHESTRATIONS = "/api/v1/orchestrations"


def assert_refused(response, field: str) -> None:
    assert "Not a valid string" in " ".join(field_errors(response, field))


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"name": 5}, "name"),
        ({"description": 1.5}, "description"),
        ({"tags": ["ok", 7]}, "tags[1]"),
        ({"metadata": {"team": 42}}, "metadata.team"),
        ({"zone": True}, "zone"),
    ],
)
def test_a_number_in_an_orchestrations_text_field_is_refused(editor, extra, field):
    assert_refused(editor.post(ORCHESTRATIONS, two_step(**extra), format="json"), field)
    assert Orchestration.objects.count() == 0


def test_a_number_in_a_patch_changes_nothing(editor):
    created = editor.post(ORCHESTRATIONS, two_step(), format="json").json()
    response = editor.patch(
        f"{ORCHESTRATIONS}/{created['id']}",
        {"name": 12},
        format="json",
        HTTP_IF_MATCH=created["etag"],
    )
    assert_refused(response, "name")
    assert Orchestration.objects.get(pk=created["id"]).name == "Research"


@pytest.mark.parametrize(
    ("path", "body", "field", "model"),
    [
        ("/api/v1/groups", {"name": 7}, "name", Group),
        ("/api/v1/agents", {"name": 1.5, "model": "builtin/echo"}, "name", Agent),
        (
            "/api/v1/credentials",
            {"name": "key", "kind": "bearer", "value": 12345},
            "value",
            Credential,
        ),
    ],
)
def test_a_number_in_a_library_text_field_is_refused(admin_client, path, body, field, model):
    assert_refused(admin_client.post(path, body, format="json"), field)
    assert model.objects.count() == 0


def test_a_run_message_must_be_text(editor):
    created = editor.post(ORCHESTRATIONS, two_step(status="active"), format="json").json()
    response = editor.post(f"{ORCHESTRATIONS}/{created['id']}/runs", {"message": 5}, format="json")
    assert_refused(response, "message")
