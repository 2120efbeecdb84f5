"""Triggers of an orchestration, and the inbound webhook endpoint."""

from __future__ import annotations

import logging
import uuid
from typing import NoReturn

from django.conf import settings
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import AuthenticationFailed, NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.schema import error
from core.errors import InvalidRequest
from core.throttling import AnonymousRateThrottle
from orchestrator.api.serializers import TriggerSerializer, TriggerWriteSerializer
from orchestrator.choices import TriggerKind
from orchestrator.models import Orchestration, Trigger, WebhookOutcome
from orchestrator.parsers import read_limited
from orchestrator.services import triggers as trigger_service
from orchestrator.services import webhooks

logger = logging.getLogger(__name__)


def _orchestration(request, key: str) -> Orchestration:
    found = Orchestration.objects.alive().filter(organization=request.auth.organization).by_key(key)
    if found is None:
        raise NotFound(f"No orchestration '{key}' in this organization.")
    return found


@extend_schema(tags=["triggers"])
class OrchestrationTriggerViewSet(viewsets.GenericViewSet):
    # Only for the schema (the path parameter's type); every action reads its own orchestration.
    queryset = Trigger.objects.none()
    serializer_class = TriggerSerializer
    cursor_ordering = "created_at"

    def get_object(self) -> Orchestration:
        """The orchestration in the URL (404 when foreign), looked up before the role check."""
        return _orchestration(self.request, self.kwargs["orchestration_pk"])

    def list(self, request, orchestration_pk=None):
        orchestration = _orchestration(request, orchestration_pk)
        page = self.paginate_queryset(orchestration.triggers.all())
        return self.get_paginated_response(TriggerSerializer(page, many=True).data)

    @extend_schema(request=TriggerWriteSerializer, responses={201: TriggerSerializer})
    def create(self, request, orchestration_pk=None):
        orchestration = _orchestration(request, orchestration_pk)
        serializer = TriggerWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            trigger = trigger_service.create_trigger(orchestration, serializer.validated_data)
        return Response(TriggerSerializer(trigger).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["triggers"])
class TriggerViewSet(viewsets.GenericViewSet):
    serializer_class = TriggerSerializer
    lookup_value_regex = "[^/]+"

    def get_object(self) -> Trigger:
        """The trigger in the URL (404 when foreign), looked up before the role check."""
        return self.get_trigger(self.kwargs["pk"])

    def get_trigger(self, key: str) -> Trigger:
        try:
            trigger_id = uuid.UUID(key)
        except ValueError:
            raise NotFound(f"No trigger '{key}' in this organization.") from None
        found = (
            Trigger.objects.filter(
                pk=trigger_id,
                orchestration__organization=self.request.auth.organization,
                orchestration__deleted_at__isnull=True,
            )
            .select_related("orchestration")
            .first()
        )
        if found is None:
            raise NotFound(f"No trigger '{key}' in this organization.")
        return found

    def retrieve(self, request, pk=None):
        return Response(TriggerSerializer(self.get_trigger(pk)).data)

    @extend_schema(request=TriggerWriteSerializer, responses=TriggerSerializer)
    def partial_update(self, request, pk=None):
        trigger = self.get_trigger(pk)
        current = {"kind": trigger.kind, "cron_expression": trigger.cron_expression}
        data = {**current, **request.data} if isinstance(request.data, dict) else current
        serializer = TriggerWriteSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        if serializer.validated_data["kind"] != trigger.kind:
            raise InvalidRequest(
                "A trigger's kind cannot change; create a new trigger.",
                fields={"kind": ["cannot change"]},
            )
        with transaction.atomic():
            trigger = trigger_service.update_trigger(trigger, serializer.validated_data)
        return Response(TriggerSerializer(trigger).data)

    def destroy(self, request, pk=None):
        with transaction.atomic():
            trigger_service.delete_trigger(self.get_trigger(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses={
            200: TriggerSerializer,
            400: error("`validation_error`: only webhook triggers have a signing secret."),
        },
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        trigger = self.get_trigger(pk)
        if trigger.kind != TriggerKind.WEBHOOK:
            raise InvalidRequest("Only webhook triggers have a signing secret.")
        with transaction.atomic():
            trigger = trigger_service.rotate_secret(trigger)
        return Response(TriggerSerializer(trigger).data)


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
            400: error("`trigger_mismatch`: the trigger is paused or the body does not fit it."),
            409: error(
                "`orchestration_not_active`: the orchestration is a draft or paused; "
                "`conflict`: the Idempotency-Key was used for another body in the last 24 h."
            ),
        },
    )
    def post(self, request, orchestration_id: str, token: str):
        # A bounded read of the Django request: the server wrappers (config/bodies.py) cap
        # bodies already, but one that reached the view another way must not be read unbounded.
        body = read_limited(request._request, settings.WEBHOOK_MAX_BODY_BYTES)
        try:
            accepted = webhooks.accept(
                orchestration_id,
                token,
                request.headers.get("X-Orchestrator-Signature", ""),
                body,
                idempotency_key=request.headers.get("Idempotency-Key", "")[:255],
            )
        except webhooks.SignatureError as exc:
            _refuse(str(exc), orchestration_id)
        if accepted.duplicate:
            self.outcome = WebhookOutcome.DUPLICATE
        run_id = str(accepted.run_id) if accepted.run_id else None
        return Response({"run_id": run_id}, status=status.HTTP_202_ACCEPTED)
