"""Request guards that run before any view: body-size limits (which limit applies to a path, and
refusing a declared Content-Length over it before anything reads the body), and URLs holding a
NUL character.

A body sent without Content-Length (chunked) has no length to check here; the server-side
wrappers in config/bodies.py count its bytes as it arrives, with the same `body_limit`.
"""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse

from core.domain_errors import summarize
from core.errors import error_body, handler404, json_error
from core.params import parse_integer
from orchestrator.definition.checks import NUL_MESSAGE
from orchestrator.models import WebhookOutcome
from orchestrator.services import webhooks

WEBHOOK_PREFIX = "/api/v1/webhooks/"
API_PREFIX = "/api/"
# Pages (forms, the admin) are bounded by Django's DATA_UPLOAD_MAX_MEMORY_SIZE, which counts the
# values of a form but not the multipart boundaries and part headers around them (up to
# DATA_UPLOAD_MAX_NUMBER_FIELDS parts of ~100 bytes each): this much more keeps any form Django
# itself would accept.
PAGE_BODY_ALLOWANCE = 128 * 1024


def is_webhook_path(path: str) -> bool:
    return path.startswith(WEBHOOK_PREFIX)


def body_limit(path: str) -> int:
    """The most bytes of request body accepted on this path."""
    if is_webhook_path(path):
        return settings.WEBHOOK_MAX_BODY_BYTES
    if path.startswith(API_PREFIX):
        return settings.API_MAX_BODY_BYTES
    # None means "no limit" to Django; a body nobody reads is still not worth spooling unbounded.
    form_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if form_limit is None:
        form_limit = settings.API_MAX_BODY_BYTES
    return form_limit + PAGE_BODY_ALLOWANCE


def too_large_body(limit: int) -> dict:
    """The API.md error body of a 413, the same from the middleware and the server wrappers."""
    return error_body("payload_too_large", f"The request body is larger than {limit} bytes.")


class BodySizeLimitMiddleware:
    """Answers 413 from a declared Content-Length on API paths. Pages are left to Django's own
    DATA_UPLOAD_MAX_MEMORY_SIZE check, which answers a form with its usual 400."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(API_PREFIX):
            limit = body_limit(request.path)
            declared = parse_integer(request.META.get("CONTENT_LENGTH") or "0")
            if declared is None:
                return json_error("validation_error", "Content-Length is not a number.", 400)
            if declared > limit:
                if is_webhook_path(request.path):
                    webhooks.count_request(WebhookOutcome.TOO_LARGE)
                return JsonResponse(too_large_body(limit), status=413)
        return self.get_response(request)


class NulInUrlMiddleware:
    """A URL holding a NUL character (`%00`): PostgreSQL refuses one in any query parameter, so
    a lookup by slug or token with it was a 500 (`/api/v1/orchestrations/a%00b`, a share link).
    In the path it names nothing: 404, as any unknown address; in the query string it is a
    parameter no filter can take: 400 naming it."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path:
            return handler404(request)
        for name, values in request.GET.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                fields = {name: [NUL_MESSAGE]}
                return JsonResponse(
                    error_body("validation_error", summarize(fields), fields), status=400
                )
        return self.get_response(request)
