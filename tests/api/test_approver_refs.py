"""The usernames a definition or a library agent names as approvers, checked when it is saved:
deciding takes an editor of the organization, and a gate that names no one who can decide waits
until it times out (a week by default) with no one able to answer it."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from core.choices import Role
from orchestrator.models import ApiToken, Membership, Orchestration
from orchestrator.services import tokens

pytestmark = pytest.mark.django_db


def gate(node_id: str = "gate", **config) -> dict:
    return {"id": node_id, "type": "approval", "config": {"prompt": "Ship?", **config}}


def gated_agent(approvers: list[str]) -> dict:
    return {
        "id": "ask",
        "type": "agent",
        "config": {
            "agent": {
                "model": "builtin/echo",
                "tools": [{"tool": "http_get", "approval": {"approvers": approvers}}],
            },
            "prompt": "Fetch it",
        },
    }


def save(client, nodes: list[dict]):
    return client.post(
        "/api/v1/orchestrations",
        {"name": "Gated", "definition": {"nodes": nodes, "edges": []}},
        format="json",
    )


@pytest.fixture
def people(org, other_org, editors):
    """ann edits here; vic only views here; ola edits another organization; gus left (inactive)."""
    editors("ann")
    editors("ola", organization=other_org)
    vic, gus = (get_user_model().objects.create_user(name) for name in ("vic", "gus"))
    Membership.objects.create(user=vic, organization=org, role=Role.VIEWER)
    Membership.objects.create(user=gus, organization=org, role=Role.EDITOR)
    gus.is_active = False
    gus.save()


def test_approvers_who_cannot_decide_here_are_refused_on_their_paths(editor, people):
    response = save(
        editor,
        [
            gate(approvers=["ann", "anne"], escalate_after_s=60, escalate_to=["vic", "ola"]),
            gate("second", approvers=["gus"]),
            gated_agent(["ann", "nobody"]),
        ],
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["fields"] == {
        "definition.nodes[0].config.approvers": [
            "'anne' cannot decide here: not an editor or admin of this organization"
        ],
        "definition.nodes[0].config.escalate_to": [
            "'vic' cannot decide here: not an editor or admin of this organization",
            "'ola' cannot decide here: not an editor or admin of this organization",
        ],
        "definition.nodes[1].config.approvers": [
            "'gus' cannot decide here: not an editor or admin of this organization"
        ],
        "definition.nodes[2].config.agent.tools[0].approval.approvers": [
            "'nobody' cannot decide here: not an editor or admin of this organization"
        ],
    }
    assert "anne" in body["detail"]
    assert not Orchestration.objects.exists()


def test_editors_admins_and_service_accounts_with_a_deciding_token_may_be_named(
    editor, org, people, api
):
    admin = get_user_model().objects.create_user("ada")
    Membership.objects.create(user=admin, organization=org, role=Role.ADMIN)
    ApiToken.issue(org, Role.EDITOR, service_account="release-bot")
    nodes = [
        gate(approvers=["ann", "ada", "service:release-bot"]),
        gated_agent(["service:test-editor"]),  # the token that saves it
    ]
    response = save(editor, nodes)
    assert response.status_code == 201, response.json()

    # A viewer token, a revoked token or another organization's token cannot decide here.
    ApiToken.issue(org, Role.VIEWER, service_account="reader-bot")
    revoked, _ = ApiToken.issue(org, Role.EDITOR, service_account="old-bot")
    tokens.revoke(ApiToken.objects.filter(pk=revoked.pk))
    response = save(editor, [gate(approvers=["service:reader-bot", "service:old-bot"])])
    assert response.status_code == 400
    assert len(response.json()["fields"]["definition.nodes[0].config.approvers"]) == 2


def test_an_edit_that_names_someone_who_cannot_decide_changes_nothing(editor, people):
    created = save(editor, [gate(approvers=["ann"])]).json()
    url = f"/api/v1/orchestrations/{created['id']}"
    response = editor.patch(
        url,
        {"definition": {"nodes": [gate(approvers=["vic"])], "edges": []}},
        format="json",
        HTTP_IF_MATCH=created["etag"],
    )
    assert response.status_code == 400
    assert "definition.nodes[0].config.approvers" in response.json()["fields"]
    saved = editor.get(url).json()
    assert saved["definition"]["nodes"][0]["config"]["approvers"] == ["ann"]
    assert saved["version"] == created["version"]


def test_a_library_agents_gated_tool_names_who_may_decide(editor, people):
    tools = [{"tool": "http_get", "approval": {"approvers": ["ola"]}}]
    response = editor.post(
        "/api/v1/agents",
        {"name": "fetcher", "model": "builtin/echo", "tools": tools},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "tools[0].approval.approvers": [
            "'ola' cannot decide here: not an editor or admin of this organization"
        ]
    }
    tools[0]["approval"]["approvers"] = ["ann"]
    response = editor.post(
        "/api/v1/agents",
        {"name": "fetcher", "model": "builtin/echo", "tools": tools},
        format="json",
    )
    assert response.status_code == 201, response.json()
