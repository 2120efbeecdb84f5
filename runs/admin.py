"""Operators' view of runs: the trace read-only, with cancel and replay as actions."""

from __future__ import annotations

from django.contrib import admin, messages

from core.domain_errors import DomainError
from runs.models import OutputVersion, Run, RunEvent, ShareLink, StepRun
from runs.services import lifecycle


class StepRunInline(admin.TabularInline):
    model = StepRun
    fk_name = "run"
    extra = 0
    fields = [
        "node_id",
        "node_type",
        "attempt",
        "status",
        "started_at",
        "finished_at",
        "model",
        "tokens_input",
        "tokens_output",
        "cost_usd",
        "error",
    ]
    readonly_fields = fields
    can_delete = False
    ordering = ["created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class RunEventInline(admin.TabularInline):
    model = RunEvent
    extra = 0
    fields = ["seq", "type", "step_id", "ts", "data"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "orchestration",
        "status",
        "trigger_kind",
        "version",
        "cost_usd",
        "steps_completed",
        "steps_total",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "trigger_kind", "organization", "created_at"]
    search_fields = ["id", "orchestration__name", "orchestration__slug"]
    date_hierarchy = "created_at"
    list_select_related = ["orchestration"]
    readonly_fields = [field.name for field in Run._meta.fields]
    inlines = [StepRunInline, RunEventInline]
    actions = ["cancel_runs", "replay_runs"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Cancel the selected runs")
    def cancel_runs(self, request, queryset):
        done = 0
        for run in queryset:
            try:
                lifecycle.cancel(run)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{run.pk}: {exc.detail}", messages.WARNING)
        self.message_user(request, f"Cancelled {done} runs.", messages.SUCCESS)

    @admin.action(description="Replay the selected runs")
    def replay_runs(self, request, queryset):
        done = 0
        for run in queryset:
            try:
                lifecycle.replay(run, requested_by=request.user)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{run.pk}: {exc.detail}", messages.WARNING)
        self.message_user(request, f"Started {done} replays.", messages.SUCCESS)


@admin.register(StepRun)
class StepRunAdmin(admin.ModelAdmin):
    list_display = [
        "node_id",
        "run",
        "node_type",
        "attempt",
        "status",
        "started_at",
        "finished_at",
        "lease_expires_at",
    ]
    list_filter = ["status", "node_type"]
    search_fields = ["node_id", "run__id"]
    readonly_fields = [field.name for field in StepRun._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(OutputVersion)
class OutputVersionAdmin(admin.ModelAdmin):
    """Refined outputs are history: readable, never edited here."""

    list_display = ["run", "version", "output_type", "requested_by_name", "created_at"]
    list_filter = ["output_type"]
    search_fields = ["run__id", "prompt"]
    readonly_fields = [
        "run",
        "version",
        "output",
        "output_type",
        "prompt",
        "requested_by_name",
        "created_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    """Operators can revoke a public link (set revoked_at); the token itself is not shown."""

    list_display = ["run", "created_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["run__id"]
    fields = ["run", "created_at", "revoked_at"]
    readonly_fields = ["run", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False
