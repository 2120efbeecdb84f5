"""Shared fixtures: two organizations, tokens of each role, and API clients that use them."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.test import APIClient

from core.choices import Role
from orchestrator.models import ApiToken, Membership, Organization

# The tests of the pure Python packages (the engine's scheduler, the definition language): no
# database, broker or setting reaches them, so they run once, not again on every profile.
PURE_DIRECTORIES = ("engine", "definition")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name in PURE_DIRECTORIES and item.path.parent.parent.name == "tests":
            item.add_marker(pytest.mark.pure)


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    # Manifest names do not exist until collectstatic has run.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Throttle counters live in the cache; each test starts with none. On Redis this empties the
    # test's whole database, which the broker and the channel layer share: nothing a test left
    # there (a queued message, a group) reaches the next one.
    cache.clear()


@pytest.fixture
def operator(client):
    """A Django client signed in as a superuser, for the admin."""
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-123456")
    client.force_login(user)
    return client


@pytest.fixture
def org(db) -> Organization:
    return Organization.objects.create(name="Acme", slug="acme")


@pytest.fixture
def other_org(db) -> Organization:
    return Organization.objects.create(name="Globex", slug="globex")


class ApiFactory:
    """`api("editor")` gives a client with a fresh token of that role in `org`."""

    def __init__(self, org: Organization) -> None:
        self.org = org

    def __call__(self, role: str = Role.EDITOR, org: Organization | None = None) -> APIClient:
        _, raw = ApiToken.issue(org or self.org, role, service_account=f"test-{role}")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        client.raw_token = raw
        return client


@pytest.fixture
def api(org) -> ApiFactory:
    return ApiFactory(org)


@pytest.fixture
def editor(api) -> APIClient:
    return api(Role.EDITOR)


@pytest.fixture
def viewer(api) -> APIClient:
    return api(Role.VIEWER)


@pytest.fixture
def admin_client(api) -> APIClient:
    return api(Role.ADMIN)


@pytest.fixture
def outsider(api, other_org) -> APIClient:
    """An admin of another organization: must never see anything of `org`."""
    return api(Role.ADMIN, other_org)


@pytest.fixture
def editors(org):
    """`editors("ann", "bob")`: new users who are editors of `org` (or of `organization=`), as
    the usernames a definition names as approvers must be."""

    def make(*usernames: str, organization: Organization | None = None) -> list:
        users = [get_user_model().objects.create_user(name) for name in usernames]
        for user in users:
            Membership.objects.create(user=user, organization=organization or org, role=Role.EDITOR)
        return users

    return make
