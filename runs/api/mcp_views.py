"""The MCP server registry: `/mcp-servers`. Views validate and call `runs.services.mcp_servers`.

The operator's stdio servers (MCP_STDIO_SERVERS) are listed first on the first page and can be
read by id, but every write to one answers 409: no request can change them or start a process.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api.base import TenantScopedMixin
from core.api.schema import error
from orchestrator.models import McpServer
from runs.api.mcp_serializers import McpServerSerializer
from runs.filtersets import McpServerFilter
from runs.services import mcp_servers

STDIO_READ_ONLY = error("`conflict`: an operator's stdio server, which the API cannot change.")


@extend_schema(tags=["mcp-servers"])
class McpServerViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = McpServer.objects.all()
    serializer_class = McpServerSerializer
    filterset_class = McpServerFilter
    noun = "MCP server"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_object(self):
        mcp_servers.refuse_stdio(str(self.kwargs.get("pk", "")))
        return super().get_object()

    @extend_schema(operation_id="mcp_servers_list")
    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        if not set(request.query_params) - {"limit"}:  # the first page, unfiltered
            stdio = [server.as_dict() for server in mcp_servers.stdio_servers()]
            response.data["items"] = stdio + list(response.data["items"])
        return response

    @extend_schema(operation_id="mcp_servers_retrieve")
    def retrieve(self, request, *args, **kwargs):
        stdio = mcp_servers.stdio_server(str(kwargs.get("pk", "")))
        if stdio is not None:
            return Response(stdio.as_dict())
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        operation_id="mcp_servers_create",
        description="Registers the server and lists its tools at once: `status` is `ok`, or "
        "`error` with the reason in `error`. An inside address is refused (400) unless "
        "HTTP_ALLOWED_NETWORKS allows it.",
    )
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        serializer.instance = mcp_servers.create_server(
            self.organization, **serializer.validated_data
        )

    @extend_schema(
        operation_id="mcp_servers_partial_update",
        responses={200: McpServerSerializer, 409: STDIO_READ_ONLY},
    )
    def partial_update(self, request, *args, **kwargs):
        return super().partial_update(request, *args, **kwargs)

    def perform_update(self, serializer):
        serializer.instance = mcp_servers.update_server(
            serializer.instance, **serializer.validated_data
        )

    @extend_schema(operation_id="mcp_servers_destroy", responses={204: None, 409: STDIO_READ_ONLY})
    def destroy(self, request, *args, **kwargs):
        return super().destroy(request, *args, **kwargs)

    @extend_schema(
        operation_id="mcp_servers_refresh",
        request=None,
        responses={200: McpServerSerializer, 409: STDIO_READ_ONLY},
        description="Lists the server's tools again; `status`, `error` and `checked_at` say how "
        "that went.",
    )
    @action(detail=True, methods=["post"])
    def refresh(self, request, pk=None):
        server = mcp_servers.refresh(self.get_object())
        return Response(
            McpServerSerializer(server, context=self.get_serializer_context()).data,
            status=status.HTTP_200_OK,
        )
