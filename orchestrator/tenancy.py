"""The tenant a request acts for, and how much it may do there."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from orchestrator.choices import ROLE_RANK, Role
from orchestrator.models import ApiToken, Membership, Organization


@dataclass(frozen=True)
class Tenant:
    """Set as `request.auth` by both authentication classes; views scope every query by it."""

    organization: Organization
    role: str
    token: ApiToken | None = None

    def allows(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]

    @property
    def is_service_account(self) -> bool:
        return self.token is not None and self.token.user_id is None


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
        self.username = f"service:{name or 'unnamed'}"

    def get_username(self) -> str:
        return self.username

    def __str__(self) -> str:
        return self.username


def membership_for(user, requested: str | None) -> Membership | None:
    """The user's membership in the requested organization (slug or id), else their default one."""
    memberships = Membership.objects.select_related("organization").filter(user=user)
    if requested:
        try:
            key = {"organization_id": uuid.UUID(requested)}
        except ValueError:
            key = {"organization__slug": requested}
        return memberships.filter(**key).first()
    return memberships.order_by("-is_default", "created_at").first()


def organization_by_key(key: str) -> Organization | None:
    try:
        return Organization.objects.filter(id=uuid.UUID(key)).first()
    except ValueError:
        return Organization.objects.filter(slug=key).first()
