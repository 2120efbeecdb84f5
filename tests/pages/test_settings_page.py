"""`/settings/`: a signed-in user sees and revokes their own API tokens, and nobody else's."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from core.choices import Role
from orchestrator.models import ApiToken, Membership

pytestmark = pytest.mark.django_db


def person(name: str, organization, role=Role.EDITOR):
    user = get_user_model().objects.create_user(name, password="pw-long-enough-1")
    Membership.objects.create(user=user, organization=organization, role=role, is_default=True)
    return user


def works(raw: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client.get("/api/v1/orchestrations").status_code == 200


@pytest.fixture
def ada(org):
    return person("ada", org)


def signed_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def test_the_nav_links_to_the_settings_page(ada):
    assert 'href="/settings/"' in signed_in(ada).get("/").content.decode()


def test_the_settings_page_lists_only_the_users_own_tokens_in_their_org(ada, org, other_org):
    mine, _ = ApiToken.issue(org, Role.EDITOR, user=ada, name="ada-laptop")
    Membership.objects.create(user=ada, organization=other_org, role=Role.ADMIN)
    elsewhere, _ = ApiToken.issue(other_org, Role.ADMIN, user=ada, name="ada-at-globex")
    bob = person("bob", org)
    theirs, _ = ApiToken.issue(org, Role.EDITOR, user=bob, name="bob-laptop")
    robot, _ = ApiToken.issue(org, Role.ADMIN, service_account="robot")
    page = signed_in(ada).get("/settings/").content.decode()
    assert "ada-laptop" in page and mine.prefix in page
    for hidden in (elsewhere, theirs, robot):
        assert str(hidden.pk) not in page and hidden.prefix not in page


def test_the_page_shows_a_token_capped_by_the_users_role(ada, org):
    ApiToken.issue(org, Role.ADMIN, user=ada, name="old-admin")
    page = signed_in(ada).get("/settings/").content.decode()
    assert "editor" in page and "issued as admin" in page


def test_revoking_from_the_page_ends_the_token(ada, org):
    token, raw = ApiToken.issue(org, Role.EDITOR, user=ada, name="ada-laptop")
    client = signed_in(ada)
    response = client.post(f"/settings/tokens/{token.pk}/revoke/", follow=True)
    assert response.status_code == 200
    assert "no longer works" in response.content.decode()
    assert "ada-laptop" not in response.content.decode()
    assert not works(raw)


def test_the_page_cannot_revoke_someone_elses_token(ada, org, other_org):
    bob = person("bob", org)
    theirs, bob_raw = ApiToken.issue(org, Role.EDITOR, user=bob)
    robot, robot_raw = ApiToken.issue(org, Role.ADMIN, service_account="robot")
    foreign, foreign_raw = ApiToken.issue(other_org, Role.ADMIN, service_account="globex")
    client = signed_in(ada)
    for token in (theirs, robot, foreign):
        assert client.post(f"/settings/tokens/{token.pk}/revoke/").status_code == 404
    assert works(bob_raw) and works(robot_raw) and works(foreign_raw)


def test_revoking_needs_a_post_with_the_csrf_token(ada, org):
    token, raw = ApiToken.issue(org, Role.EDITOR, user=ada)
    url = f"/settings/tokens/{token.pk}/revoke/"
    assert signed_in(ada).get(url).status_code == 405
    assert signed_in(ada, enforce_csrf_checks=True).post(url).status_code == 403
    assert works(raw)


def test_signed_out_people_are_sent_to_login(org):
    response = Client().get("/settings/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
