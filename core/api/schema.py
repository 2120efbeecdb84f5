"""OpenAPI details drf-spectacular cannot infer: our auth schemes, slash-less paths, the error
answers every operation can give, and the async views that wrap DRF views."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from core.permissions import HasTenantRole


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "core.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from `manage.py create_token`.",
        }


class TenantSessionScheme(OpenApiAuthenticationExtension):
    target_class = "core.auth.TenantSessionAuthentication"
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


def documented_as(view: Callable, drf_view: Callable) -> Callable:
    """Document an async view as the DRF view it delegates to.

    drf-spectacular lists DRF views only, so the async views that call a viewset action and then
    wait for the run (runs/api/streaming.py) would be missing from the schema, although they are
    the API's most used routes. They validate and answer exactly as that action does.
    """
    for name in ("cls", "initkwargs", "actions"):
        setattr(view, name, getattr(drf_view, name))
    return view


class ErrorSerializer(serializers.Serializer):
    """The one body of every error (API.md, "Errors")."""

    error = serializers.CharField(help_text="A stable code, such as `validation_error`.")
    detail = serializers.CharField(help_text="A sentence for a person.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors only: messages keyed by the JSON path of what they are about.",
    )


def error(description: str) -> OpenApiResponse:
    """An error answer for `extend_schema(responses=...)`, for the codes only some views give
    (409, 412, 428, and 400 where nothing in the request hints at it)."""
    return OpenApiResponse(ErrorSerializer, description=description)


# The errors the framework gives on its own, and when: added to every operation they fit.
BAD_REQUEST = error("`validation_error`: the body or the query does not fit the schema.")
UNAUTHORIZED = error("`unauthorized`: missing or invalid credentials.")
FORBIDDEN = error("`forbidden`: the token's role is too low for this.")
NOT_FOUND = error("`not_found`: no such object in this organization.")
TOO_LARGE = error("`payload_too_large`: the body is over the configured limit.")
UNSUPPORTED = error("`unsupported_media_type`: the body is not sent as `application/json`.")
BAD_NUMBER = error(
    "`validation_error`: a number in the path is not an integer in ASCII digits, or out of range."
)
RATE_LIMITED = error("`rate_limited`: throttled; `Retry-After` says when to try again.")


class ErrorAutoSchema(AutoSchema):
    """Adds the error answers of API.md to each operation, as the views give them: 400 where
    there is a body or a read's query to validate, 401 everywhere (a bad token is refused even
    on the public gallery), 403 where a role is checked, 404 where the path names an object, 413
    where there is a body and 415 where DRF parses it, 429 where a throttle applies. Views
    declare the others themselves."""

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code, answer in self._framework_errors().items():
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(
                    answer, str(code), direction=direction
                )
        return responses

    def _framework_errors(self) -> dict[int, OpenApiResponse]:
        has_body = self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer()
        # Reads validate their query strictly (an unknown filter is a 400, not ignored).
        has_query = self.method == "GET" and any(
            p.get("in") == "query" for p in self._get_parameters()
        )
        # Without authentication (the inbound webhook) an unknown id is refused like a bad
        # signature, with 401: a 404 would tell which ids exist.
        names_object = "{" in self.path and bool(self.view.authentication_classes)
        checks_role = any(isinstance(p, HasTenantRole) for p in self.view.get_permissions())
        errors: dict[int, OpenApiResponse] = {401: UNAUTHORIZED}
        if has_body or has_query:
            errors[400] = BAD_REQUEST
        if checks_role:
            errors[403] = FORBIDDEN
        if names_object:
            errors[404] = NOT_FOUND
        if has_body:
            errors[413] = TOO_LARGE
        if has_body and self.view.parser_classes:
            errors[415] = UNSUPPORTED
        if self.view.get_throttles():
            errors[429] = RATE_LIMITED
        return errors
