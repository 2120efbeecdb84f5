"""Agents, groups and credentials: plain tenant-scoped resources."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets

from core.api.base import TenantModelViewSet, TenantScopedMixin
from orchestrator.api.serializers import AgentSerializer, CredentialSerializer, GroupSerializer
from orchestrator.models import Agent, Credential, Group
from orchestrator.services import credentials


@extend_schema(tags=["agents"])
class AgentViewSet(TenantModelViewSet):
    queryset = Agent.objects.all()
    serializer_class = AgentSerializer
    noun = "agent"


@extend_schema(tags=["groups"])
class GroupViewSet(TenantModelViewSet):
    queryset = Group.objects.all()
    serializer_class = GroupSerializer
    noun = "group"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]


@extend_schema(tags=["credentials"])
class CredentialViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The value is write-only: it is encrypted on the way in and never sent back."""

    queryset = Credential.objects.all()
    serializer_class = CredentialSerializer
    noun = "credential"

    @transaction.atomic
    def perform_create(self, serializer):
        serializer.instance = credentials.create_credential(
            self.organization, **serializer.validated_data
        )
