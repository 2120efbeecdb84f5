"""The public gallery API: read by anyone, forked by editors into their own organization."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from core.choices import Role
from core.permissions import HasTenantRole
from gallery import services
from gallery.api.serializers import GalleryItemSerializer
from gallery.filtersets import GalleryFilter
from orchestrator.api.serializers import OrchestrationDetailSerializer
from orchestrator.api.templates_views import created_response


@extend_schema(tags=["gallery"])
class GalleryViewSet(viewsets.GenericViewSet):
    serializer_class = GalleryItemSerializer
    filterset_class = GalleryFilter
    lookup_value_regex = "[^/]+"
    cursor_ordering = "-created_at"
    required_role = Role.EDITOR

    def get_permissions(self):
        return [HasTenantRole()] if self.action == "fork" else [AllowAny()]

    def get_queryset(self):
        return services.public_orchestrations()

    @extend_schema(auth=[])
    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        library = services.library_agents({o.organization_id for o in page if o.public_definition})
        serializer = GalleryItemSerializer(page, many=True, context={"library": library})
        return self.get_paginated_response(serializer.data)

    @extend_schema(auth=[])
    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(services.public_orchestration(pk)).data)

    @extend_schema(request=None, responses={201: OrchestrationDetailSerializer})
    @action(detail=True, methods=["post"])
    def fork(self, request, pk=None):
        forked = services.fork(pk, request.auth.organization, user=request.user)
        return created_response(request, forked)
