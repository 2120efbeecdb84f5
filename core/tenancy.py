"""The tenant a request acts for, and how much it may do there.

The tenancy models (Organization, Membership, ApiToken) live in the `orchestrator` app, whose
migrations created them; `core` sits below every domain app and must not import one. So, like
Django's AUTH_USER_MODEL, the settings ORGANIZATION_MODEL, MEMBERSHIP_MODEL and API_TOKEN_MODEL
name them ("app_label.Model"), and the functions below resolve them through the app registry.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import models

from core.choices import ROLE_RANK, Role


def organization_model() -> type[models.Model]:
    return apps.get_model(settings.ORGANIZATION_MODEL)


def membership_model() -> type[models.Model]:
    return apps.get_model(settings.MEMBERSHIP_MODEL)


def api_token_model() -> type[models.Model]:
    return apps.get_model(settings.API_TOKEN_MODEL)


def hash_token(raw: str) -> str:
    """Tokens are random and long, so a fast unsalted hash is enough and keeps lookups indexed."""
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class Tenant:
    """Set as `request.auth` by both authentication classes; views scope every query by it."""

    organization: Any
    role: str
    token: Any = None

    def allows(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]

    @property
    def is_service_account(self) -> bool:
        return self.token is not None and self.token.user_id is None


def service_account_username(name: str) -> str:
    """What a service account acts, and is named (as an approver, in `decided_by`), as."""
    return f"service:{name or 'unnamed'}"


class ServiceAccount:
    """Stands in for `request.user` when a service-account token (no user) authenticates."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, name: str) -> None:
        self.username = service_account_username(name)

    def get_username(self) -> str:
        return self.username

    def __str__(self) -> str:
        return self.username


def membership_for(user: Any, requested: str | None) -> Any:
    """The user's membership in the requested organization (slug or id), else their default one."""
    memberships = (
        membership_model()._default_manager.select_related("organization").filter(user=user)
    )
    if requested:
        key: dict[str, Any]
        try:
            key = {"organization_id": uuid.UUID(requested)}
        except ValueError:
            key = {"organization__slug": requested}
        return memberships.filter(**key).first()
    return memberships.order_by("-is_default", "created_at").first()


def organization_by_key(key: str) -> Any:
    organizations = organization_model()._default_manager
    try:
        return organizations.filter(id=uuid.UUID(key)).first()
    except ValueError:
        return organizations.filter(slug=key).first()
