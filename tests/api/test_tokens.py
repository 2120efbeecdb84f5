"""A person's token follows their membership, and admins list, issue and revoke tokens.

The attack (issue 19, finding 4): a member removed from the organization, demoted or deactivated
kept full use of the tokens issued to them. Every way in with a token is tried: the API, the
event stream (SSE), the run websocket and /metrics.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from config.asgi import application
from core.choices import Role
from orchestrator.models import ApiToken, Membership
from orchestrator.services.orchestrations import create_orchestration
from runs.models import TriggerKind
from runs.services import lifecycle
from tests.runs.harness import drain

pytestmark = pytest.mark.django_db

ORCHESTRATIONS = "/api/v1/orchestrations"
TOKENS = "/api/v1/tokens"
NEW_ORCHESTRATION = {
    "name": "Mine",
    "nodes": [{"id": "a", "type": "transform", "config": {"output": "x"}}],
}


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def alice(org):
    """An admin member of `org` holding an admin token of her own."""
    user = get_user_model().objects.create_user("alice", password="pw-long-enough-1")
    membership = Membership.objects.create(user=user, organization=org, role=Role.ADMIN)
    _, raw = ApiToken.issue(org, Role.ADMIN, user=user, name="laptop")
    user.raw_token = raw
    user.membership = membership
    return user


@pytest.fixture
def finished_run(org, transactional_db):
    """A run to stream and watch; the stream and the socket are served on other threads, which
    see only committed rows."""
    orchestration = create_orchestration(
        org,
        {
            "name": "Flow",
            "status": "active",
            "definition": {"nodes": [{"id": "a", "type": "transform", "config": {"output": 1}}]},
        },
    )
    run, _ = lifecycle.fire(orchestration, {}, trigger_kind=TriggerKind.API)
    drain()
    return run


def socket_connects(path: str) -> bool:
    async def connect() -> bool:
        communicator = WebsocketCommunicator(
            application, path, headers=[(b"origin", b"http://testserver")]
        )
        connected, _ = await communicator.connect(timeout=5)
        if connected:
            await communicator.disconnect()
        return connected

    return async_to_sync(connect)()


def every_way_in(raw: str, run) -> dict[str, int | bool]:
    stream = bearer(raw).get(f"/api/v1/runs/{run.pk}/events/stream")
    stream.close()
    return {
        "api": bearer(raw).get(ORCHESTRATIONS).status_code,
        "sse": stream.status_code,
        "websocket": socket_connects(f"/ws/runs/{run.pk}/?token={raw}"),
    }


# --- membership ends access ---------------------------------------------------------------------


def test_a_members_token_works_on_every_way_in_while_they_are_a_member(alice, finished_run):
    assert every_way_in(alice.raw_token, finished_run) == {
        "api": 200,
        "sse": 200,
        "websocket": True,
    }


def test_removing_a_member_ends_their_token_on_the_api_sse_and_websocket(alice, finished_run):
    alice.membership.delete()
    assert every_way_in(alice.raw_token, finished_run) == {
        "api": 401,
        "sse": 401,
        "websocket": False,
    }
    assert bearer(alice.raw_token).get(ORCHESTRATIONS).json()["error"] == "unauthorized"


def test_a_member_moved_to_another_org_cannot_use_the_old_orgs_token(alice, other_org):
    alice.membership.delete()
    Membership.objects.create(user=alice, organization=other_org, role=Role.ADMIN)
    assert bearer(alice.raw_token).get(ORCHESTRATIONS).status_code == 401


def test_a_deactivated_users_token_is_refused(alice, finished_run):
    alice.is_active = False
    alice.save()
    assert every_way_in(alice.raw_token, finished_run)["api"] == 401


def test_a_token_of_a_user_who_never_was_a_member_is_refused(org):
    stranger = get_user_model().objects.create_user("mallory")
    _, raw = ApiToken.issue(org, Role.ADMIN, user=stranger)
    assert bearer(raw).get(ORCHESTRATIONS).status_code == 401


def test_a_removed_members_admin_token_no_longer_reaches_metrics(alice):
    alice.membership.delete()
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {alice.raw_token}")
    assert response.status_code == 401


# --- the member's current role caps the token ----------------------------------------------------


def test_a_demoted_admins_admin_token_acts_as_a_viewer(alice):
    Membership.objects.filter(pk=alice.membership.pk).update(role=Role.VIEWER)
    client = bearer(alice.raw_token)
    assert client.get(ORCHESTRATIONS).status_code == 200
    refused = client.post(ORCHESTRATIONS, NEW_ORCHESTRATION, format="json")
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert "your role here is viewer" in refused.json()["detail"]
    assert client.get(TOKENS).status_code == 403
    assert client.post(TOKENS, {"role": "admin"}, format="json").status_code == 403


def test_a_demoted_admins_token_acts_as_an_editor_when_made_editor(alice):
    Membership.objects.filter(pk=alice.membership.pk).update(role=Role.EDITOR)
    client = bearer(alice.raw_token)
    assert client.post(ORCHESTRATIONS, NEW_ORCHESTRATION, format="json").status_code == 201
    assert client.get(TOKENS).status_code == 403


def test_promoting_a_member_does_not_raise_a_token_above_its_own_role(org):
    user = get_user_model().objects.create_user("vic")
    Membership.objects.create(user=user, organization=org, role=Role.ADMIN)
    _, raw = ApiToken.issue(org, Role.VIEWER, user=user)
    assert bearer(raw).post(ORCHESTRATIONS, NEW_ORCHESTRATION, format="json").status_code == 403


def test_a_service_account_token_needs_no_membership(api, finished_run):
    client = api(Role.ADMIN)
    assert every_way_in(client.raw_token, finished_run) == {
        "api": 200,
        "sse": 200,
        "websocket": True,
    }
    assert client.post(ORCHESTRATIONS, NEW_ORCHESTRATION, format="json").status_code == 201


# --- GET/POST/DELETE /tokens ----------------------------------------------------------------------


def test_admins_list_the_orgs_working_tokens_without_hash_or_raw_value(admin_client, alice, org):
    revoked, _ = ApiToken.issue(org, Role.VIEWER, service_account="old")
    admin_client.delete(f"{TOKENS}/{revoked.pk}")
    body = admin_client.get(TOKENS).json()
    assert body["next_cursor"] is None
    by_name = {item["name"] or item["service_account"]: item for item in body["items"]}
    assert set(by_name) == {"laptop", "test-admin"}
    assert by_name["laptop"] == {
        "id": str(ApiToken.objects.get(name="laptop").pk),
        "name": "laptop",
        "prefix": alice.raw_token[:10],
        "role": "admin",
        "effective_role": "admin",
        "user": "alice",
        "service_account": None,
        "created_at": by_name["laptop"]["created_at"],
        "last_used_at": None,
    }
    assert by_name["test-admin"]["user"] is None
    text = str(body)
    for token in ApiToken.objects.all():
        assert token.token_hash not in text
    assert alice.raw_token not in text and admin_client.raw_token not in text


def test_the_list_shows_a_demoted_members_token_at_its_capped_role(admin_client, alice):
    Membership.objects.filter(pk=alice.membership.pk).update(role=Role.VIEWER)
    items = admin_client.get(TOKENS).json()["items"]
    laptop = next(item for item in items if item["name"] == "laptop")
    assert (laptop["role"], laptop["effective_role"]) == ("admin", "viewer")


def test_the_token_list_is_cursor_paginated(admin_client, org):
    for index in range(3):
        ApiToken.issue(org, Role.VIEWER, service_account=f"bot-{index}")
    first = admin_client.get(TOKENS, {"limit": 2}).json()
    second = admin_client.get(TOKENS, {"limit": 2, "cursor": first["next_cursor"]}).json()
    ids = [item["id"] for item in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 4 and second["next_cursor"] is None


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
def test_viewers_and_editors_may_not_list_issue_or_revoke_tokens(api, role, org):
    token, raw = ApiToken.issue(org, Role.VIEWER, service_account="target")
    client = api(role)
    assert client.get(TOKENS).json()["error"] == "forbidden"
    issue = client.post(TOKENS, {"role": "viewer", "service_account": "x"}, format="json")
    assert issue.status_code == 403
    assert client.delete(f"{TOKENS}/{token.pk}").status_code == 403
    assert bearer(raw).get(ORCHESTRATIONS).status_code == 200


def test_an_admin_issues_a_service_account_token_shown_once(admin_client):
    response = admin_client.post(
        TOKENS, {"role": "editor", "service_account": "ci", "name": "deploys"}, format="json"
    )
    assert response.status_code == 201
    issued = response.json()
    assert (issued["service_account"], issued["user"], issued["role"]) == ("ci", None, "editor")
    assert issued["token"].startswith(issued["prefix"])
    made = bearer(issued["token"]).post(ORCHESTRATIONS, NEW_ORCHESTRATION, format="json")
    assert made.status_code == 201
    listed = admin_client.get(TOKENS).json()["items"]
    assert all("token" not in item for item in listed)
    assert issued["token"] not in str(listed)


def test_a_signed_in_admin_issues_a_token_of_their_own(alice):
    client = APIClient()
    client.force_login(alice)
    issued = client.post(TOKENS, {"role": "viewer", "name": "script"}, format="json").json()
    assert (issued["user"], issued["effective_role"]) == ("alice", "viewer")
    assert bearer(issued["token"]).get(ORCHESTRATIONS).status_code == 200


def test_a_service_account_must_name_the_service_account_it_issues_for(admin_client):
    response = admin_client.post(TOKENS, {"role": "viewer"}, format="json")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["service_account"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"role": "owner", "service_account": "x"}, "role"),
        ({"service_account": "x"}, "role"),
        ({"role": "viewer", "service_account": "  "}, "service_account"),
        ({"role": "viewer", "service_account": 5}, "service_account"),
        ({"role": "viewer", "service_account": "x", "user": "alice"}, "user"),
        ({"role": "viewer", "service_account": "x", "name": "n" * 101}, "name"),
    ],
)
def test_a_bad_token_request_names_the_field(admin_client, body, field):
    response = admin_client.post(TOKENS, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert field in response.json()["fields"]


def test_revoking_a_token_ends_it_at_once(admin_client, alice, finished_run):
    token = ApiToken.objects.get(name="laptop")
    response = admin_client.delete(f"{TOKENS}/{token.pk}")
    assert response.status_code == 204
    assert every_way_in(alice.raw_token, finished_run) == {
        "api": 401,
        "sse": 401,
        "websocket": False,
    }
    assert admin_client.delete(f"{TOKENS}/{token.pk}").status_code == 404
    assert str(token.pk) not in str(admin_client.get(TOKENS).json())


def test_another_orgs_token_cannot_be_seen_or_revoked(admin_client, outsider, alice):
    token = ApiToken.objects.get(name="laptop")
    response = outsider.delete(f"{TOKENS}/{token.pk}")
    assert (response.status_code, response.json()["error"]) == (404, "not_found")
    assert str(token.pk) not in str(outsider.get(TOKENS).json())
    assert bearer(alice.raw_token).get(ORCHESTRATIONS).status_code == 200


def test_an_admin_may_revoke_the_token_it_calls_with(admin_client):
    own = ApiToken.objects.get(service_account="test-admin")
    assert admin_client.delete(f"{TOKENS}/{own.pk}").status_code == 204
    assert admin_client.get(TOKENS).status_code == 401
