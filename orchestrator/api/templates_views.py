"""Starter templates: the catalog (read by any member) and instantiation (editors)."""

from __future__ import annotations

import django_filters
from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from core.choices import Role
from orchestrator.api.serializers import OrchestrationDetailSerializer
from orchestrator.api.template_serializers import (
    InstantiateSerializer,
    StarterTemplateDetailSerializer,
    StarterTemplateSerializer,
)
from orchestrator.models import Orchestration, StarterTemplate
from orchestrator.services import starters


class StarterTemplateFilter(django_filters.FilterSet):
    category = django_filters.CharFilter(field_name="category", lookup_expr="iexact")
    tag = django_filters.CharFilter(method="filter_tag")
    q = django_filters.CharFilter(method="filter_search")

    class Meta:
        model = StarterTemplate
        fields: list[str] = []

    def filter_tag(self, queryset, name, value):
        return queryset.filter(tag_index__contains=starters.tag_index([value.strip().lower()]))

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))


@extend_schema(tags=["templates"])
class StarterTemplateViewSet(viewsets.GenericViewSet):
    """The catalog is the same for every organization; instances land in the caller's."""

    queryset = StarterTemplate.objects.all()
    serializer_class = StarterTemplateSerializer
    filterset_class = StarterTemplateFilter
    lookup_value_regex = "[^/]+"
    cursor_ordering = "id"

    def required_role(self, request) -> str:
        return Role.EDITOR if self.action == "instantiate" else Role.VIEWER

    def get_object(self) -> StarterTemplate:
        found = StarterTemplate.objects.filter(pk=self.kwargs["pk"]).first()
        if found is None:
            raise NotFound(f"No starter template '{self.kwargs['pk']}'.")
        return found

    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(responses=StarterTemplateDetailSerializer)
    def retrieve(self, request, pk=None):
        return Response(StarterTemplateDetailSerializer(self.get_object()).data)

    @extend_schema(request=InstantiateSerializer, responses={201: OrchestrationDetailSerializer})
    @action(detail=True, methods=["post"])
    def instantiate(self, request, pk=None):
        template = self.get_object()
        serializer = InstantiateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        orchestration = starters.instantiate(
            template,
            request.auth.organization,
            name=serializer.validated_data.get("name", "").strip(),
            user=request.user,
        )
        return created_response(request, orchestration)


def created_response(request, orchestration: Orchestration) -> Response:
    """201 with the orchestration's detail; webhook signing secrets appear here only, once."""
    secrets = getattr(orchestration, "new_trigger_secrets", {})
    fresh = (
        Orchestration.objects.select_related("owner")
        .prefetch_related("tag_rows", "triggers")
        .get(pk=orchestration.pk)
    )
    data = OrchestrationDetailSerializer(fresh, context={"request": request}).data
    for trigger in data["triggers"]:
        trigger["signing_secret"] = secrets.get(trigger["id"])
    return Response(data, status=status.HTTP_201_CREATED, headers={"ETag": f'"{fresh.etag}"'})
