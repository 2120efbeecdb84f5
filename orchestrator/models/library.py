"""What orchestrations are built from: agents, the credentials they use, and groups."""

from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from orchestrator.choices import CredentialKind, McpServerStatus
from orchestrator.definition.nodes import MAX_TOKENS_CEILING
from orchestrator.models.tenancy import Organization


class Group(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="group_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class Credential(models.Model):
    """A secret used by agents and http steps. The value is only ever stored encrypted."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="credentials"
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=CredentialKind.choices)
    encrypted_value = models.TextField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="credential_name_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Agent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    model = models.CharField(max_length=200, help_text="provider/name, or 'default'.")
    system_prompt = models.TextField(blank=True)
    tools = models.JSONField(default=list, blank=True)
    temperature = models.FloatField(null=True, blank=True)
    max_turns = models.PositiveIntegerField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TOKENS_CEILING)],
        help_text="The most tokens one model call may answer with; empty: the provider's default.",
    )
    credential = models.ForeignKey(
        Credential, null=True, blank=True, on_delete=models.SET_NULL, related_name="agents"
    )
    base_url = models.URLField(max_length=500, blank=True)
    price = models.JSONField(default=dict, blank=True)
    script = models.JSONField(
        default=list, blank=True, help_text="Replies played by the builtin/script model."
    )
    output_schema = models.JSONField(
        null=True, blank=True, help_text="JSON Schema the final answer must validate against."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="agent_name_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.model})"


class McpServer(models.Model):
    """A streamable HTTP MCP server whose tools agents may use. Its tools are listed when it is
    registered and on refresh, and kept here, so the editor and the page show them without a
    call out. Stdio servers are no rows: only the operator's MCP_STDIO_SERVERS setting names them.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="mcp_servers"
    )
    name = models.CharField(max_length=200)
    url = models.URLField(max_length=2000)
    credential = models.ForeignKey(
        Credential, null=True, blank=True, on_delete=models.SET_NULL, related_name="mcp_servers"
    )
    status = models.CharField(
        max_length=10, choices=McpServerStatus.choices, default=McpServerStatus.PENDING
    )
    error = models.TextField(blank=True, help_text="Why the last listing failed (redacted).")
    tools = models.JSONField(default=list, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "MCP server"
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="mcp_server_name_unique")
        ]

    def __str__(self) -> str:
        return self.name
