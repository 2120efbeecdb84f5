from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from core.choices import Role
from orchestrator.models import Membership
from orchestrator.services.starters import load_starters


@pytest.fixture
def catalog(db) -> None:
    load_starters()


@pytest.fixture
def browser(org):
    """`browser(role)`: a Django test client signed in as a member of `org` with that role."""

    def make(role: str = Role.EDITOR) -> Client:
        user = get_user_model().objects.create_user(f"{role}-user", password="pw-12345678")
        Membership.objects.create(user=user, organization=org, role=role, is_default=True)
        client = Client()
        client.force_login(user)
        return client

    return make
