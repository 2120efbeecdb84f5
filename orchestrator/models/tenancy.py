"""Organizations (the tenants), who belongs to them, and the API tokens that act for them."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections, models

from core.choices import ROLE_RANK, Role
from core.tenancy import hash_token, service_account_username

if TYPE_CHECKING:
    from django.contrib.auth.models import User

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

    def usable_by_hash(self, token_hash: str) -> ApiToken | None:
        """`usable().with_standing().filter(token_hash=token_hash).first()`, from a statement
        written once per process: every API request authenticates with it, and building that
        query with the ORM (its subquery, joins and compilation) cost more CPU than the query
        took in PostgreSQL. Read from the database on every call, so a revoked token, a removed
        member or a lowered role counts from the next request on."""
        return _usable_token_lookup(self.db)(token_hash)


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
        return service_account_username(self.service_account)

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


def _columns(model: type[models.Model], alias: str, connection) -> tuple[list, list[str], list]:
    """The model's concrete columns as `alias.column`, their attnames, and the converters each
    value goes through (none on PostgreSQL; SQLite's UUIDs and times need theirs)."""
    fields = model._meta.concrete_fields
    quote = connection.ops.quote_name
    selected = [f"{alias}.{quote(field.column)}" for field in fields]
    converters = [
        [
            *connection.ops.get_db_converters(field.cached_col),
            *field.get_db_converters(connection),
        ]
        for field in fields
    ]
    return selected, [field.attname for field in fields], list(zip(fields, converters, strict=True))


@cache
def _usable_token_lookup(using: str) -> Callable[[str], ApiToken | None]:
    connection = connections[using]  # for the statement's text and converters only
    quote = connection.ops.quote_name
    user_model = get_user_model()
    parts = [
        (ApiToken, "t", *_columns(ApiToken, "t", connection)),
        (Organization, "o", *_columns(Organization, "o", connection)),
        (user_model, "u", *_columns(user_model, "u", connection)),
    ]
    sql = (
        f"SELECT {', '.join(column for part in parts for column in part[2])}, "
        f"(SELECT m.{quote('role')} FROM {quote(Membership._meta.db_table)} m "
        f"WHERE m.{quote('user_id')} = t.{quote('user_id')} "
        f"AND m.{quote('organization_id')} = t.{quote('organization_id')} LIMIT 1) "
        f"FROM {quote(ApiToken._meta.db_table)} t "
        f"INNER JOIN {quote(Organization._meta.db_table)} o "
        f"ON o.{quote('id')} = t.{quote('organization_id')} "
        f"LEFT OUTER JOIN {quote(user_model._meta.db_table)} u "
        f"ON u.{quote(str(user_model._meta.pk.column))} = t.{quote('user_id')} "
        f"WHERE t.{quote('token_hash')} = %s AND t.{quote('revoked_at')} IS NULL"
    )

    def hydrate(model, attnames: list[str], converted: list, values, current) -> models.Model:
        row = []
        for value, (field, converters) in zip(values, converted, strict=True):
            for converter in converters:
                value = converter(value, field.cached_col, current)
            row.append(value)
        return model.from_db(using, attnames, row)

    def lookup(token_hash: str) -> ApiToken | None:
        current = connections[using]  # the calling thread's: connections are per thread
        with current.cursor() as cursor:
            cursor.execute(sql, [token_hash])
            found = cursor.fetchone()
        if found is None:
            return None
        objects, start = [], 0
        for model, _, columns, attnames, converted in parts:
            values = found[start : start + len(columns)]
            start += len(columns)
            objects.append(
                None if values[0] is None else hydrate(model, attnames, converted, values, current)
            )
        token = cast(ApiToken, objects[0])  # the token's columns are never NULL: it was found
        organization, user = objects[1], objects[2]
        token.organization = cast(Organization, organization)
        token.user = cast("User | None", user)
        token.member_role = found[start]
        return token

    return lookup
