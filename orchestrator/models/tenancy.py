"""Organizations (the tenants), who belongs to them, and the API tokens that act for them."""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models

from core.choices import ROLE_RANK, Role
from core.tenancy import hash_token

TOKEN_PREFIX = "orc_"


class Organization(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    run_retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Days a finished run is kept; empty: the instance's RUN_RETENTION_DAYS; "
        "0: kept for good.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def retention_days(self) -> int:
        """Days the organization's finished runs are kept: its own setting, else the instance's;
        0 keeps them for good."""
        if self.run_retention_days is None:
            return settings.RUN_RETENTION_DAYS
        return self.run_retention_days


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    is_default = models.BooleanField(
        default=False, help_text="The organization used when a request names none."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)

    def with_standing(self) -> ApiTokenQuerySet:
        """Loads what `ApiToken.effective_role` needs in the same query: the holder, and their
        current role in the token's organization (`member_role`, None when not a member)."""
        member_role = Membership.objects.filter(
            user_id=models.OuterRef("user_id"), organization_id=models.OuterRef("organization_id")
        ).values("role")[:1]
        return self.select_related("organization", "user").annotate(
            member_role=models.Subquery(member_role)
        )


class ApiToken(models.Model):
    """A bearer token for one organization. Only its hash is stored; the raw value is shown once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_tokens"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_tokens",
    )
    service_account = models.CharField(
        max_length=100, blank=True, help_text="Name of the service account when there is no user."
    )
    name = models.CharField(max_length=100, blank=True)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    prefix = models.CharField(max_length=12, help_text="The first characters, to recognise it.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()
    member_role: str | None  # annotated by ApiTokenQuerySet.with_standing()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.holder})"

    @property
    def holder(self) -> str:
        if self.user_id:
            return self.user.get_username()
        return f"service:{self.service_account or 'unnamed'}"

    @property
    def effective_role(self) -> str | None:
        """What the token may do now, or None when it may do nothing.

        A person's token acts for them, so it follows their membership: it works only while they
        are an active member of the token's organization, and never above their current role
        (a demoted admin's admin token acts as what they are now). A service account has no
        membership; its token carries its own role. Every way in with a token (API, SSE,
        websocket, metrics) asks this, on a row loaded through `with_standing()`.
        """
        if self.user_id is None:
            return self.role
        if self.member_role is None or not self.user.is_active:
            return None
        return min(Role(self.role), Role(self.member_role), key=ROLE_RANK.__getitem__)

    @classmethod
    def issue(
        cls,
        organization: Organization,
        role: str,
        *,
        user=None,
        service_account: str = "",
        name: str = "",
    ) -> tuple[ApiToken, str]:
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            organization=organization,
            role=role,
            user=user,
            service_account=service_account,
            name=name,
            prefix=raw[:10],
            token_hash=hash_token(raw),
        )
        return token, raw
