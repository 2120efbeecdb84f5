"""Approval gates and input forms: what a paused run is waiting for, and who answered."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models

from orchestrator.models import Organization


class ApprovalKind(models.TextChoices):
    APPROVAL = "approval", "Approval"
    INPUT = "input", "Input form"
    TOOL_CALL = "tool_call", "Tool call"


# The kinds a person answers with approve or deny (an input form is answered with its fields):
# what `resume`, a step's approve endpoint and a timeout's `on_timeout: approve` decide.
YES_NO_KINDS = (ApprovalKind.APPROVAL, ApprovalKind.TOOL_CALL)


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


# The name recorded as the decider when the system, not a person, settles a question.
SYSTEM = "system"


class Approval(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="approvals"
    )
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="approvals")
    step_run = models.OneToOneField(
        "runs.StepRun",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="approval",
        help_text="Empty for a budget approval, which belongs to the run, not a step.",
    )
    step_id = models.CharField(max_length=63, blank=True)
    kind = models.CharField(max_length=10, choices=ApprovalKind.choices)
    prompt = models.TextField(blank=True)
    fields = models.JSONField(default=list, blank=True)
    agent_context = models.TextField(blank=True)
    payload = models.JSONField(
        default=dict,
        null=True,
        blank=True,
        help_text="A tool call's: {tool, args, calls: [{tool_call_id, tool, args}]}.",
    )
    status = models.CharField(
        max_length=10,
        choices=ApprovalStatus.choices,
        default=ApprovalStatus.PENDING,
        db_index=True,
    )
    approvers = models.JSONField(default=list, blank=True)
    escalate_to = models.JSONField(default=list, blank=True)
    escalate_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    on_timeout = models.CharField(max_length=10, default="deny")
    on_deny = models.CharField(max_length=10, default="fail")
    comment = models.TextField(blank=True)
    response = models.JSONField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_by_name = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "status"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.step_id} of run {self.run_id} ({self.status})"

    @property
    def tool_calls(self) -> list[dict[str, Any]] | None:
        """A tool_call approval's calls as the decider sees them, `[{"tool", "args"}]`: every
        gated call the model made in its turn, which an approval lets run together."""
        if self.kind != ApprovalKind.TOOL_CALL:
            return None
        payload = self.payload or {}
        calls = payload.get("calls") or [{"tool": payload.get("tool"), "args": payload.get("args")}]
        return [{"tool": call.get("tool"), "args": call.get("args")} for call in calls]
