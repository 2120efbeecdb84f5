from __future__ import annotations

from django.contrib import admin

from approvals.models import Approval


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    """Decisions are made through the API or the inbox, where they resume runs; here they are
    records."""

    list_display = [
        "step_id",
        "kind",
        "status",
        "run",
        "decided_by_name",
        "decided_at",
        "expires_at",
        "created_at",
    ]
    list_filter = ["status", "kind", "organization"]
    search_fields = ["step_id", "prompt", "run__id", "decided_by_name"]
    readonly_fields = [field.name for field in Approval._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
