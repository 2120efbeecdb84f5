"""Triggers of an orchestration, and the inbound webhook endpoint."""

from __future__ import annotations

import uuid

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from core.api.schema import error
from core.domain_errors import InvalidRequest
from orchestrator.api.serializers import TriggerSerializer, TriggerWriteSerializer
from orchestrator.choices import TriggerKind
from orchestrator.models import Orchestration, Trigger
from orchestrator.services import triggers as trigger_service


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
