from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from orchestrator.models import ApiToken, Membership, Organization

pytestmark = pytest.mark.django_db

URL = "/api/v1/orchestrations"


def test_no_credentials_answer_401_with_the_error_format():
    response = APIClient().get(URL)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_invalid_token_answers_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer orc_nope")
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid or revoked API token."


def test_a_revoked_token_answers_401(editor):
    ApiToken.objects.update(revoked_at=timezone.now())
    assert editor.get(URL).status_code == 401


def test_tokens_are_stored_hashed(editor):
    token = ApiToken.objects.get()
    assert editor.raw_token not in (token.token_hash, token.prefix)
    assert editor.get(URL).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


def run_create_token(*args: str) -> str:
    out = StringIO()
    call_command("create_token", *args, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def test_create_token_prints_a_working_token_as_its_last_line():
    raw = run_create_token(
        "--org", "newco", "--role", "editor", "--create-org", "--service-account", "ci"
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get(URL).status_code == 200
    assert Organization.objects.filter(slug="newco").exists()


def test_create_token_for_a_user_makes_them_a_member(org):
    raw = run_create_token("--org", "acme", "--role", "admin", "--user", "ops")
    membership = Membership.objects.get(user__username="ops")
    assert membership.organization == org
    assert membership.role == "admin"
    assert ApiToken.objects.get(user__username="ops").token_hash != raw


def test_create_token_refuses_an_unknown_org_without_create_org():
    with pytest.raises(CommandError, match="--create-org"):
        run_create_token("--org", "ghost", "--role", "viewer", "--service-account", "x")


def bootstrap_demo() -> str:
    out = StringIO()
    call_command("bootstrap_demo", stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def works(raw: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client.get(URL).status_code == 200


def test_make_run_prints_the_same_working_demo_token_on_every_start(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first = bootstrap_demo()
    assert bootstrap_demo() == first
    assert works(first)
    assert (tmp_path / "demo-token").stat().st_mode & 0o077 == 0


def test_a_revoked_or_lost_demo_token_is_replaced(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first = bootstrap_demo()
    ApiToken.objects.filter(name="make run").update(revoked_at=timezone.now())
    second = bootstrap_demo()
    assert second != first and works(second) and not works(first)
    (tmp_path / "demo-token").unlink()
    third = bootstrap_demo()
    assert third != second and works(third) and not works(second)


@pytest.fixture
def member(org, other_org):
    user = get_user_model().objects.create_user("sam", password="pw-123456")
    Membership.objects.create(user=user, organization=org, role="viewer", is_default=True)
    Membership.objects.create(user=user, organization=other_org, role="editor")
    client = APIClient()
    client.force_login(user)
    return client


def test_a_session_user_acts_in_their_default_org(member, org, editor):
    editor.post(
        URL,
        {"name": "Mine", "nodes": [{"id": "a", "type": "delay", "config": {"seconds": 1}}]},
        format="json",
    )
    assert [i["name"] for i in member.get(URL).json()["items"]] == ["Mine"]


def test_x_tenant_id_picks_another_org_by_slug_or_id(member, other_org):
    assert member.get(URL, HTTP_X_TENANT_ID="globex").json()["items"] == []
    assert member.get(URL, HTTP_X_TENANT_ID=str(other_org.id)).status_code == 200
    response = member.post(
        URL,
        {"name": "x", "nodes": [{"id": "a", "type": "delay", "config": {"seconds": 1}}]},
        format="json",
        HTTP_X_TENANT_ID="globex",
    )
    # Session writes need the CSRF token; the role check passes (editor in globex).
    assert response.status_code in (201, 403)


def test_x_tenant_id_of_an_org_the_user_is_not_in_answers_404(member):
    Organization.objects.create(name="Other", slug="other")
    response = member.get(URL, HTTP_X_TENANT_ID="other")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_user_with_no_membership_is_forbidden():
    user = get_user_model().objects.create_user("lonely", password="pw-123456")
    client = APIClient()
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 403
    assert response.json()["detail"] == "You are not a member of any organization."


def test_throttled_requests_answer_429_with_retry_after(editor, monkeypatch):
    from core.throttling import TokenRateThrottle

    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"user": "2/min", "anon": "2/min"})
    responses = [editor.get(URL) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[-1].json()["error"] == "rate_limited"
    assert int(responses[-1].headers["Retry-After"]) >= 1


def test_each_token_has_its_own_rate_limit(api, monkeypatch):
    from core.throttling import TokenRateThrottle

    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"user": "1/min", "anon": "1/min"})
    first, second = api("viewer"), api("viewer")
    assert first.get(URL).status_code == 200
    assert second.get(URL).status_code == 200
    assert first.get(URL).status_code == 429
