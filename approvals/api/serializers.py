from __future__ import annotations

from typing import Any

from rest_framework import serializers

from approvals.models import Approval
from approvals.services import allowed_deciders
from orchestrator.api.fields import StrictBooleanField, StrictCharField, StrictSerializer


class ApprovalSerializer(serializers.ModelSerializer):
    run_id = serializers.UUIDField(read_only=True)
    orchestration = serializers.UUIDField(source="run.orchestration_id", read_only=True)
    orchestration_name = serializers.CharField(source="run.orchestration.name", read_only=True)
    decided_by = serializers.CharField(source="decided_by_name", read_only=True)
    tool = serializers.SerializerMethodField(help_text="kind tool_call: the tool the agent calls.")
    args = serializers.SerializerMethodField(
        help_text="kind tool_call: the first call's arguments (see `calls` for all)."
    )
    calls = serializers.ListField(
        source="tool_calls",
        read_only=True,
        allow_null=True,
        child=serializers.DictField(),
        help_text='kind tool_call: every call the approval lets run, `[{"tool", "args"}]` (a '
        "model may ask for several in one turn); null for other kinds.",
    )
    deciders = serializers.SerializerMethodField(
        help_text="Usernames who may decide now: `approvers`, plus `escalate_to` once escalated. "
        "Empty means any editor of the organization."
    )

    class Meta:
        model = Approval
        fields = [
            "id",
            "run_id",
            "orchestration",
            "orchestration_name",
            "step_id",
            "kind",
            "prompt",
            "fields",
            "agent_context",
            "tool",
            "args",
            "calls",
            "status",
            "comment",
            "response",
            "approvers",
            "deciders",
            "decided_by",
            "decided_at",
            "expires_at",
            "created_at",
        ]

    def get_tool(self, approval: Approval) -> str | None:
        return approval.payload.get("tool") if approval.payload else None

    def get_args(self, approval: Approval) -> dict[str, Any] | None:
        return approval.payload.get("args") if approval.payload else None

    def get_deciders(self, approval: Approval) -> list[str]:
        """So an inbox can say who may decide before someone clicks and gets a 403."""
        return allowed_deciders(approval)


class DecisionSerializer(StrictSerializer):
    comment = StrictCharField(required=False, allow_blank=True, max_length=10_000)
    response = serializers.JSONField(required=False)


class ResumeSerializer(StrictSerializer):
    response = serializers.JSONField()
    step_id = StrictCharField(required=False)
    async_ = StrictBooleanField(required=False, default=False)

    def get_fields(self):
        fields = super().get_fields()
        fields["async"] = fields.pop("async_")
        return fields


class StepApproveSerializer(StrictSerializer):
    approved = StrictBooleanField()
    reason = StrictCharField(required=False, allow_blank=True, max_length=10_000)
