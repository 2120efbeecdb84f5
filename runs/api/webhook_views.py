"""Signed inbound webhooks: the endpoint that accepts a delivery and fires its run."""

from __future__ import annotations

import logging
from typing import NoReturn

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.schema import error
from core.throttling import AnonymousRateThrottle
from orchestrator.json_bodies import read_limited
from orchestrator.models import WebhookOutcome
from orchestrator.services import webhooks
from runs.services import firing

logger = logging.getLogger(__name__)


class WebhookThrottle(AnonymousRateThrottle):
    scope = "webhook"


def _refuse(reason: str, orchestration_id: str) -> NoReturn:
    logger.info("webhook refused for %s: %s", orchestration_id, reason)
    raise AuthenticationFailed("Invalid webhook token or signature.")


@extend_schema(tags=["triggers"])
class WebhookView(APIView):
    """Signed inbound webhooks. Every failure of the token, signature or time window is the same
    401, and starts nothing."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [WebhookThrottle]
    # The signature covers the raw bytes, so `post` reads the body itself; DRF never parses it.
    parser_classes: list = []
    # Set by `post` when the status alone cannot tell (a replay is 202 like an accepted request).
    outcome: WebhookOutcome | None = None

    def dispatch(self, request, *args, **kwargs):
        """Counts every request by outcome, including those refused before `post` (throttled)."""
        try:
            response = super().dispatch(request, *args, **kwargs)
        except Exception:
            webhooks.count_request(WebhookOutcome.ERROR)
            raise
        webhooks.count_request(self.outcome or webhooks.outcome_for_status(response.status_code))
        return response

    def get_authenticate_header(self, request) -> str:
        # Makes DRF answer a refused signature with 401, as for a refused token.
        return 'Signature realm="webhooks"'

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        parameters=[
            OpenApiParameter(
                "X-Orchestrator-Signature", OpenApiTypes.STR, OpenApiParameter.HEADER, required=True
            )
        ],
        responses={
            202: inline_serializer(
                "WebhookAccepted",
                {
                    "run_id": serializers.UUIDField(
                        allow_null=True,
                        help_text="The run started, or that of the same delivery before.",
                    )
                },
            ),
            400: error("`trigger_mismatch`: the body does not fit the trigger."),
            409: error(
                "`orchestration_not_active`: the orchestration is a draft or paused; "
                "`conflict`: the trigger is paused, or the Idempotency-Key was used for another "
                "body in the last 24 h."
            ),
        },
    )
    def post(self, request, orchestration_id: str, token: str):
        # A bounded read of the Django request: the server wrappers (config/bodies.py) cap
        # bodies already, but one that reached the view another way must not be read unbounded.
        body = read_limited(request._request, settings.WEBHOOK_MAX_BODY_BYTES)
        try:
            accepted = firing.accept(
                orchestration_id,
                token,
                request.headers.get("X-Orchestrator-Signature", ""),
                body,
                idempotency_key=request.headers.get("Idempotency-Key", ""),
            )
        except webhooks.SignatureError as exc:
            _refuse(str(exc), orchestration_id)
        if accepted.duplicate:
            self.outcome = WebhookOutcome.DUPLICATE
        run_id = str(accepted.run_id) if accepted.run_id else None
        return Response({"run_id": run_id}, status=status.HTTP_202_ACCEPTED)
