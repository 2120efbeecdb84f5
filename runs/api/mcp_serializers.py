"""The MCP server registry's wire format: `credential` names an org credential (id or name),
`tools` and `status` are what the last listing found and are never written by a client."""

from __future__ import annotations

from rest_framework import serializers

from orchestrator.api.fields import CredentialField, StrictModelSerializer
from orchestrator.api.serializers import NameUniqueInTenantMixin
from orchestrator.models import McpServer


class McpToolSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    input_schema = serializers.JSONField()


class McpServerSerializer(NameUniqueInTenantMixin, StrictModelSerializer):
    url = serializers.URLField(
        max_length=2000, help_text="The server's streamable HTTP endpoint, e.g. https://host/mcp."
    )
    credential = CredentialField(
        help_text="An org credential (id or name) whose value goes on every request to the "
        "server, as an http step sends it (bearer, basic, API key or custom header).",
    )
    tools = McpToolSerializer(many=True, read_only=True)
    transport = serializers.SerializerMethodField()
    # The API's field named like Field.read_only (a flag of every field), which the stubs type.
    read_only = serializers.SerializerMethodField()  # type: ignore[assignment]

    class Meta:
        model = McpServer
        fields = [
            "id",
            "name",
            "url",
            "credential",
            "transport",
            "status",
            "error",
            "tools",
            "checked_at",
            "read_only",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["status", "error", "checked_at"]

    def get_transport(self, server: McpServer) -> str:
        return "streamable_http"

    def get_read_only(self, server: McpServer) -> bool:
        """True for the operator's stdio servers, which the API lists but cannot change."""
        return False

    def to_internal_value(self, data):
        # Unknown keys are refused, so `{"command": ...}` (a stdio server) is a 400: only the
        # operator's MCP_STDIO_SERVERS setting can name a process to start.
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["unknown field"] for key in unknown})
        return super().to_internal_value(data)
