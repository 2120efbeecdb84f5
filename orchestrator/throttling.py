"""Rate limits keyed by token, so service accounts (which have no user id) don't share a bucket."""

from __future__ import annotations

from rest_framework.throttling import UserRateThrottle

from orchestrator.tenancy import Tenant


class TokenRateThrottle(UserRateThrottle):
    def get_cache_key(self, request, view):
        tenant = request.auth
        if isinstance(tenant, Tenant) and tenant.token is not None:
            ident = f"token-{tenant.token.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
