"""Refuse oversized API bodies from Content-Length alone, before anything reads them."""

from __future__ import annotations

from django.conf import settings

from orchestrator.api.errors import json_error
from orchestrator.models import WebhookOutcome
from orchestrator.services import webhooks


class BodySizeLimitMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            limit = (
                settings.WEBHOOK_MAX_BODY_BYTES
                if request.path.startswith("/api/v1/webhooks/")
                else settings.API_MAX_BODY_BYTES
            )
            length = request.META.get("CONTENT_LENGTH") or "0"
            try:
                declared = int(length)
            except ValueError:
                return json_error("validation_error", "Content-Length is not a number.", 400)
            if declared > limit:
                if request.path.startswith("/api/v1/webhooks/"):
                    webhooks.count_request(WebhookOutcome.TOO_LARGE)
                return json_error(
                    "payload_too_large", f"The request body is larger than {limit} bytes.", 413
                )
        return self.get_response(request)
