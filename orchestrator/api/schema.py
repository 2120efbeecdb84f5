"""OpenAPI details drf-spectacular cannot infer: our auth schemes and slash-less paths."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "orchestrator.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from `manage.py create_token`.",
        }


class TenantSessionScheme(OpenApiAuthenticationExtension):
    target_class = "orchestrator.auth.TenantSessionAuthentication"
    name = "sessionAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "The browser session; pick the organization with X-Tenant-Id.",
        }


def strip_trailing_slashes(endpoints, **kwargs):
    """Routes accept an optional slash; document them as API.md writes them, without one."""
    return [
        (path.rstrip("/") if path != "/" else path, regex, method, callback)
        for path, regex, method, callback in endpoints
    ]
