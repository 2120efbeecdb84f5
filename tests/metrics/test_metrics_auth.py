"""/metrics opens only to METRICS_TOKEN or an admin service account (see test_metrics_tenancy)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from core.choices import Role
from orchestrator.models import ApiToken, Membership

pytestmark = pytest.mark.django_db


def get(token: str | None = None, **headers):
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return Client().get("/metrics", **headers)


def assert_refused(response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.json()["error"] == code
    assert response.json()["detail"]


def test_without_a_token_it_is_401_with_the_error_body():
    response = get()
    assert_refused(response, 401, "unauthorized")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer nope", "Bearer ", "Basic dXNlcjpwdw==", "Bearer"])
def test_a_wrong_or_malformed_credential_is_401(header):
    assert_refused(get(HTTP_AUTHORIZATION=header), 401, "unauthorized")


def test_an_admin_service_account_token_reads_the_metrics(admin_client):
    response = get(admin_client.raw_token)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert b"orchestrator_runs_total" in response.content


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
def test_a_service_account_below_admin_is_403(api, role):
    assert_refused(get(api(role).raw_token), 403, "forbidden")


def test_a_person_s_admin_token_is_403_even_for_an_admin(org):
    person = get_user_model().objects.create_user("ops", password="pw-123456")
    Membership.objects.create(user=person, organization=org, role=Role.ADMIN)
    _, raw = ApiToken.issue(org, Role.ADMIN, user=person)
    assert_refused(get(raw), 403, "forbidden")


def test_a_revoked_admin_token_is_401(org):
    token, raw = ApiToken.issue(org, Role.ADMIN, service_account="prometheus")
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    assert_refused(get(raw), 401, "unauthorized")


def test_the_metrics_token_setting_reads_the_metrics(settings):
    settings.METRICS_TOKEN = "s3cret-scrape"
    assert get("s3cret-scrape").status_code == 200
    assert_refused(get("s3cret-scrapf"), 401, "unauthorized")


def test_only_get_is_allowed(admin_client):
    response = Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {admin_client.raw_token}")
    assert response.status_code == 405
