"""Every API error has one body: {"error", "detail", and "fields" keyed by JSON path}.

Services raise `core.domain_errors`; here their codes become HTTP statuses (`HTTP_STATUS`), and
DRF's and Django's own exceptions get the same body.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from rest_framework import exceptions, status
from rest_framework.response import Response

from core.domain_errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidRequest,
    NotFound,
    OrchestrationNotActive,
    PayloadTooLarge,
    PreconditionRequired,
    TriggerMismatch,
    VersionConflict,
    summarize,
)

logger = logging.getLogger(__name__)


# The one table from a domain error's code to its HTTP status (API.md's error table).
HTTP_STATUS: dict[str, int] = {
    InvalidRequest.code: status.HTTP_400_BAD_REQUEST,
    TriggerMismatch.code: status.HTTP_400_BAD_REQUEST,
    Forbidden.code: status.HTTP_403_FORBIDDEN,
    NotFound.code: status.HTTP_404_NOT_FOUND,
    Conflict.code: status.HTTP_409_CONFLICT,
    OrchestrationNotActive.code: status.HTTP_409_CONFLICT,
    VersionConflict.code: status.HTTP_412_PRECONDITION_FAILED,
    PayloadTooLarge.code: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    PreconditionRequired.code: status.HTTP_428_PRECONDITION_REQUIRED,
}


_CODES: list[tuple[type[exceptions.APIException], str]] = [
    (exceptions.ValidationError, "validation_error"),
    (exceptions.ParseError, "validation_error"),
    (exceptions.NotAuthenticated, "unauthorized"),
    (exceptions.AuthenticationFailed, "unauthorized"),
    (exceptions.PermissionDenied, "forbidden"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "rate_limited"),
]


def _path(prefix: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    if key in ("non_field_errors", "__all__"):
        return prefix or "$"
    return f"{prefix}.{key}" if prefix else str(key)


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF nests errors like the data; clients want one JSON path per problem."""
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            for path, messages in flatten_errors(value, _path(prefix, key)).items():
                flat.setdefault(path, []).extend(messages)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            flat.setdefault(prefix or "$", []).extend(str(item) for item in detail)
        else:
            for index, item in enumerate(detail):
                if item:
                    for path, messages in flatten_errors(item, _path(prefix, index)).items():
                        flat.setdefault(path, []).extend(messages)
    else:
        flat.setdefault(prefix or "$", []).append(str(detail))
    return flat


def error_body(code: str, detail: str, fields: dict[str, list[str]] | None = None) -> dict:
    body: dict[str, Any] = {"error": code, "detail": detail}
    if fields:
        body["fields"] = fields
    return body


def _code_for(exc: exceptions.APIException) -> str:
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return "error"


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found in this organization.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.detail, exc.fields), status=HTTP_STATUS[exc.code])
    if not isinstance(exc, exceptions.APIException):
        return None

    code = _code_for(exc)
    fields = None
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten_errors(exc.detail)
        detail = summarize(fields)
    elif isinstance(exc, exceptions.ParseError):
        detail = f"Malformed JSON: {exc.detail}"
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        # `curl -d` and HTML forms send form encoding unless told: say what the API reads.
        detail = f"{exc.detail} Send a JSON body with 'Content-Type: application/json'."
    else:
        detail = str(exc.detail)

    headers = {}
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    return Response(error_body(code, detail, fields), status=exc.status_code, headers=headers)


def json_error(code: str, detail: str, status_code: int) -> JsonResponse:
    return JsonResponse(error_body(code, detail), status=status_code)


def _wants_html(request) -> bool:
    """Pages answer people with a page; the API (and anything asking for JSON) gets the body."""
    if request.path.startswith(("/api/", "/metrics", "/healthz", "/readyz", "/ws/")):
        return False
    return "text/html" in request.META.get("HTTP_ACCEPT", "")


def handler404(request, exception=None) -> HttpResponse:
    if _wants_html(request):
        return render(request, "404.html", status=404)
    return json_error("not_found", f"No such resource: {request.path}", 404)


def handler500(request) -> JsonResponse:
    logger.error("Unhandled error on %s %s", request.method, request.path)
    return json_error("server_error", "Something went wrong on our side; it has been logged.", 500)
