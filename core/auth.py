"""DRF authentication: bearer tokens for integrations, the session (plus X-Tenant-Id) for the UI."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication

from core.tenancy import ServiceAccount, Tenant, api_token_model, hash_token, membership_for

TENANT_HEADER = "HTTP_X_TENANT_ID"
# Writing last_used_at on every request would turn every read into a write; once a minute is
# plenty to tell a live token from a forgotten one.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_from_header(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    raw = raw.strip()
    if not raw:
        raise exceptions.AuthenticationFailed("The Authorization header has no token after Bearer.")
    return raw


def tenant_for_token(raw: str) -> tuple[object, Tenant]:
    tokens = api_token_model().objects
    token = tokens.usable_by_hash(hash_token(raw))
    role = token.effective_role if token is not None else None
    if token is None or role is None:
        raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        tokens.filter(pk=token.pk).update(last_used_at=now)
    user = token.user if token.user_id else ServiceAccount(token.service_account)
    return user, Tenant(organization=token.organization, role=role, token=token)


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        raw = token_from_header(request)
        if raw is None:
            return None
        return tenant_for_token(raw)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class TenantSessionAuthentication(SessionAuthentication):
    """The logged-in browser user, acting in the organization named by X-Tenant-Id."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        requested = request.META.get(TENANT_HEADER, "").strip() or None
        membership = membership_for(user, requested)
        if membership is None:
            if requested:
                raise exceptions.NotFound(f"You are not a member of an organization '{requested}'.")
            return user, None
        return user, Tenant(organization=membership.organization, role=membership.role)
