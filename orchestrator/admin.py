"""Operators' screens. Version history and token hashes are read-only: they are records."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import models
from django.urls import reverse
from django.utils.html import format_html
from rest_framework import serializers

from core.domain_errors import InvalidRequest
from core.errors import flatten_errors
from orchestrator.api.fields import StringMapField
from orchestrator.api.serializers import AgentSerializer, SettingsSerializer
from orchestrator.definition.jsonschemas import schema_problem
from orchestrator.definition.nodes import model_problem
from orchestrator.models import (
    Agent,
    ApiToken,
    Credential,
    Group,
    McpServer,
    Membership,
    Orchestration,
    OrchestrationTag,
    OrchestrationVersion,
    Organization,
    PrunedSample,
    ScheduleFiring,
    StarterTemplate,
    Trigger,
    WebhookDelivery,
    WebhookRequestCount,
)
from orchestrator.services import credentials as credential_service
from orchestrator.services import mcp_refs, schedules, tokens
from orchestrator.services import orchestrations as orchestration_service
from orchestrator.services import triggers as trigger_service


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class KeptInItsOrganization:
    """On a change page the organization is shown, not offered: what the row holds (a secret,
    an agent or group that orchestrations name) belongs to the organization it was made in, and
    the list offered every organization."""

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields if obj is None else [*fields, "organization"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "retention", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    fields = ["name", "slug", "run_retention_days", "retention"]
    readonly_fields = ["retention"]
    inlines = [MembershipInline]

    @admin.display(description="retention in force")
    def retention(self, obj: Organization) -> str:
        days = obj.retention_days
        source = (
            "the instance's RUN_RETENTION_DAYS"
            if obj.run_retention_days is None
            else "this organization's setting"
        )
        if days == 0:
            return f"Finished runs are kept for good ({source})."
        return (
            f"Finished runs are deleted {days} days after they end ({source}), with their "
            "steps, events, approvals, output versions and webhook deliveries. Kept until "
            "then: runs in progress, subflow trees with a run still going, runs with a live "
            "share link (until it is revoked) and runs being refined or replayed."
        )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "is_default", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "organization__name"]
    autocomplete_fields = ["user", "organization"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "prefix",
        "holder",
        "organization",
        "role",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["role", "organization", "revoked_at"]
    search_fields = ["prefix", "name", "service_account", "user__username"]
    # Who holds a token and where it acts are what it was issued as; its role can be changed.
    readonly_fields = [
        "organization",
        "user",
        "service_account",
        "prefix",
        "token_hash",
        "created_at",
        "last_used_at",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        # The raw value must be shown once to whoever creates it: `manage.py create_token`.
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        count = tokens.revoke(queryset)
        self.message_user(request, f"Revoked {count} tokens.", messages.SUCCESS)


@admin.register(Group)
class GroupAdmin(KeptInItsOrganization, admin.ModelAdmin):
    list_display = ["name", "organization", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name", "description"]


class AgentAdminForm(forms.ModelForm):
    """An operator's agent, checked as the API checks one (`AgentSerializer`): its model, its
    numbers' ranges, its price and script, its tools against the organization's MCP servers and
    deciders, an output schema RE2 can run (or its steps would fail on every answer), and a
    credential of its own organization: the admin lists every organization's credentials, and
    another organization's key must never pay for this one's model calls."""

    class Meta:
        model = Agent
        fields = [
            "organization",
            "name",
            "description",
            "model",
            "system_prompt",
            "tools",
            "temperature",
            "max_turns",
            "max_tokens",
            "credential",
            "base_url",
            "price",
            "script",
            "output_schema",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.organization_id and "credential" in self.fields:
            credentials = Credential.objects.filter(organization_id=self.instance.organization_id)
            self.fields["credential"].queryset = credentials  # type: ignore[attr-defined]

    def _api_field(self, name: str) -> Any:
        return api_checked(AgentSerializer().fields[name], self.cleaned_data.get(name))

    def clean_model(self) -> str:
        model: str = self.cleaned_data.get("model") or ""
        problem = model_problem(model, settings.MODEL_ALIASES)
        if problem:
            raise forms.ValidationError(problem)
        return model

    def clean_temperature(self) -> float | None:
        return self._api_field("temperature")

    def clean_max_turns(self) -> int | None:
        return self._api_field("max_turns")

    def clean_price(self) -> dict:
        return dict(self._api_field("price") or {})

    def clean_script(self) -> list:
        return list(self._api_field("script"))

    def clean_output_schema(self) -> dict | None:
        return self._api_field("output_schema")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        # Offered when the agent is added; shown, not offered, once it exists.
        organization = cleaned.get("organization") or (
            self.instance.organization if self.instance.organization_id else None
        )
        if organization is None:
            return cleaned
        credential = cleaned.get("credential")
        if credential is not None and credential.organization_id != organization.pk:
            self.add_error("credential", "must be a credential of the agent's organization")
        if "tools" in cleaned:
            try:
                cleaned["tools"] = mcp_refs.validated_tools(organization, cleaned["tools"])
            except InvalidRequest as exc:
                self.add_error(
                    "tools", [f"{path}: {m}" for path, ms in (exc.fields or {}).items() for m in ms]
                )
        return cleaned


@admin.register(Agent)
class AgentAdmin(KeptInItsOrganization, admin.ModelAdmin):
    form = AgentAdminForm
    list_display = ["name", "model", "organization", "updated_at"]
    list_filter = ["organization", "model"]
    search_fields = ["name", "description", "system_prompt"]


@admin.register(McpServer)
class McpServerAdmin(admin.ModelAdmin):
    """Read-only: registering and refreshing list the server's tools through the net guard, which
    the API does (runs.services.mcp_servers); the admin may look and delete."""

    list_display = ["name", "url", "status", "organization", "checked_at"]
    list_filter = ["organization", "status"]
    search_fields = ["name", "url"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class CredentialForm(forms.ModelForm):
    new_value = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave empty to keep the current value.",
    )

    class Meta:
        model = Credential
        fields = ["organization", "name", "kind"]

    def clean(self):
        cleaned = super().clean()
        value = cleaned.get("new_value")
        if not value:
            if self.instance._state.adding:
                self.add_error("new_value", "A new credential needs a value.")
            elif "kind" in self.changed_data:
                self.add_error("new_value", "A new kind needs its value again.")
            return cleaned
        try:
            credential_service.check_value(cleaned.get("kind", ""), value)
        except InvalidRequest as exc:
            self.add_error("new_value", exc.fields["value"])
        return cleaned


@admin.register(Credential)
class CredentialAdmin(KeptInItsOrganization, admin.ModelAdmin):
    """The secret is never shown; a new value can be set, checked and encrypted by the same
    service as the API's."""

    form = CredentialForm
    list_display = ["name", "kind", "organization", "created_at"]
    list_filter = ["kind", "organization"]
    search_fields = ["name"]
    readonly_fields = ["created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        new_value = form.cleaned_data.get("new_value")
        if new_value:
            credential_service.set_value(obj, new_value)
        super().save_model(request, obj, form, change)


class TagInline(admin.TabularInline):
    model = OrchestrationTag
    extra = 0


class VersionInline(admin.TabularInline):
    model = OrchestrationVersion
    extra = 0
    fields = ["version", "summary", "created_by", "created_at", "etag"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class TriggerAdminForm(forms.ModelForm):
    """The API's checks on what an operator may change: a cron expression beat can schedule, an
    IANA zone, an input schema whose patterns RE2 can run, a fixed input that fits the declared
    inputs. Otherwise the save that syncs beat's task failed, beat dropped the task, or every
    delivery or slot failed on the schema or the input."""

    class Meta:
        model = Trigger
        # What the API may change (a trigger's kind is fixed), plus the rows operators mend.
        fields = [
            *(name for name in trigger_service.TRIGGER_FIELDS if name != "kind"),
            "secret_rotated_at",
        ]

    def clean_cron_expression(self) -> str:
        value = schedules.normalize_cron(self.cleaned_data.get("cron_expression", ""))
        problem = value and schedules.cron_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean_node_id(self) -> str:
        value = self.cleaned_data.get("node_id", "")
        try:
            trigger_service.check_entry(self.instance.orchestration, value)
        except InvalidRequest as exc:
            raise forms.ValidationError(exc.fields["node_id"]) from None
        return value

    def clean_input_schema(self) -> dict | None:
        value = self.cleaned_data.get("input_schema")
        problem = value is not None and schema_problem(value)
        if problem:
            where, message = problem
            raise forms.ValidationError(f"{where}: {message}")
        return value

    def clean_input(self) -> dict:
        value = self.cleaned_data.get("input") or {}
        try:
            trigger_service.check_fixed_input(
                self.instance.orchestration, self.instance.kind, value
            )
        except InvalidRequest as exc:
            raise forms.ValidationError(
                [
                    f"{path}: {message}"
                    for path, messages in (exc.fields or {}).items()
                    for message in messages
                ]
            ) from None
        return value

    def clean_timezone(self) -> str:
        value = self.cleaned_data.get("timezone", "")
        problem = schedules.zone_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        problem = trigger_service.kind_problem(
            self.instance.kind, cleaned.get("cron_expression", "")
        )
        if problem:
            self.add_error("cron_expression", problem)
        return cleaned


class TriggerInline(admin.TabularInline):
    """Changes and deletions keep beat's tasks in step (OrchestrationAdmin.save_formset); new
    triggers come from the API or the editor, which show a webhook's signing secret once."""

    model = Trigger
    form = TriggerAdminForm
    extra = 0
    fields = [
        "kind",
        "is_active",
        "state",
        "cron_expression",
        "timezone",
        "last_run_at",
        "next_run_at",
        "trigger_count",
    ]
    readonly_fields = ["kind", "state", "last_run_at", "next_run_at", "trigger_count"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _first_name(path: str) -> str:
    """The form field an error's JSON path starts with: `definition.nodes[0].id` -> definition."""
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def api_checked(field: serializers.Field, value: Any) -> Any:
    """`value` held to the API's field, its problems as form errors."""
    try:
        return field.run_validation(value)
    except serializers.ValidationError as exc:
        problems = flatten_errors(exc.detail)
        raise forms.ValidationError(
            [m if path == "$" else f"{path}: {m}" for path, ms in problems.items() for m in ms]
        ) from None


class OrchestrationAdminForm(forms.ModelForm):
    """An operator's change, checked as the API checks a PATCH (the definition or markdown,
    the slug, settings and metadata); OrchestrationAdmin.save_model saves it through the same
    service, so it gets a new version and ETag, and runs use it."""

    class Meta:
        model = Orchestration
        fields = [
            "name",
            "slug",
            "description",
            "status",
            "definition",
            "markdown",
            "settings",
            "metadata",
            "icon",
            "icon_color",
            "zone",
            "group",
            "owner",
            "is_public",
            "public_definition",
            "credit_limit",
        ]
        help_texts = {
            "definition": "Checked as the API checks it; a change adds a version.",
            "markdown": "Edit this or the definition, not both: a changed markdown is compiled.",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in ("description", "markdown"):
            self.fields[name].strip = False  # as the API keeps them
        # Offered: the groups and members of the orchestration's own organization (and an owner
        # who has left since), not every organization's.
        organization = self.instance.organization_id
        if organization and "group" in self.fields:
            groups = Group.objects.filter(organization_id=organization)
            self.fields["group"].queryset = groups  # type: ignore[attr-defined]
        if organization and "owner" in self.fields:
            owners = self.fields["owner"].queryset.filter(  # type: ignore[attr-defined]
                memberships__organization_id=organization
            ) | self.fields["owner"].queryset.filter(pk=self.instance.owner_id)  # type: ignore[attr-defined]
            self.fields["owner"].queryset = owners.distinct()  # type: ignore[attr-defined]

    def _text(self, name: str) -> str:
        """Browsers send a textarea's line breaks as CRLF; stored text (and its version
        history) has LF, so an untouched field stays unchanged."""
        return (self.cleaned_data.get(name) or "").replace("\r\n", "\n")

    def clean_description(self) -> str:
        return self._text("description")

    def clean_markdown(self) -> str:
        return self._text("markdown")

    def clean_settings(self) -> dict:
        return dict(api_checked(SettingsSerializer(), self.cleaned_data.get("settings")))

    def clean_metadata(self) -> dict:
        return api_checked(StringMapField(), self.cleaned_data.get("metadata"))

    def clean(self) -> dict:
        cleaned = super().clean()
        # What differs from the row, as the service takes it (status goes by set_status).
        # Compared with the row, not the page's hidden initial values, which a stale or
        # hand-made post may not carry.
        self.changes = {
            name: value
            for name, value in cleaned.items()
            if name in self.Meta.fields and value != getattr(self.instance, name)
        }
        try:
            orchestration_service.check_update(
                self.instance, {k: v for k, v in self.changes.items() if k != "status"}
            )
        except InvalidRequest as exc:
            for path, messages in (exc.fields or {"$": [str(exc.detail)]}).items():
                name = _first_name(path)
                if name in self.fields:
                    self.add_error(name, [m if path == name else f"{path}: {m}" for m in messages])
                else:
                    self.add_error(None, [f"{path}: {m}" for m in messages])
        return cleaned


@admin.register(Orchestration)
class OrchestrationAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "organization",
        "status",
        "version",
        "step_count",
        "zone",
        "is_public",
        "updated_at",
        "deleted_at",
    ]
    list_filter = ["status", "is_public", "organization", "zone", "deleted_at"]
    search_fields = ["name", "slug", "description"]
    form = OrchestrationAdminForm
    readonly_fields = [
        "id",
        "open_in_editor",
        "organization",
        "version",
        "etag",
        "step_count",
        "member_ids",
        "forked_from",
        "fork_count",
        "created_by",
        "created_at",
        "updated_at",
        "deleted_at",
    ]
    inlines = [TagInline, TriggerInline, VersionInline]

    def has_add_permission(self, request) -> bool:
        """Through the API or the editor, which show a webhook's signing secret once."""
        return False

    @admin.display(description="Editor")
    def open_in_editor(self, obj: Orchestration) -> str:
        return format_html('<a href="{}">Open in the editor</a>', reverse("editor", args=[obj.pk]))

    def save_model(self, request, obj: Orchestration, form, change) -> None:
        """Through the API's services: a changed definition, markdown, name, description,
        settings or metadata adds a version; any change renews the ETag; a status change
        pauses or resumes as the API's pause and activate do."""
        changes = dict(form.changes)
        status = changes.pop("status", None)
        current = obj
        if changes:
            current = orchestration_service.update_orchestration(
                obj, changes, if_match="*", replace=False, user=request.user
            )
        if status is not None:
            orchestration_service.set_status(current, status)
        obj.refresh_from_db()

    def save_formset(self, request, form, formset, change) -> None:
        """Beat's tasks of the triggers deleted here go with them (their ids are gone after)."""
        if formset.model is not Trigger:
            super().save_formset(request, form, formset, change)
            return
        deleted = [f.instance.pk for f in formset.deleted_forms if f.instance.pk]
        super().save_formset(request, form, formset, change)
        schedules.remove_tasks(deleted)

    def save_related(self, request, form, formsets, change) -> None:
        """A status or trigger changed here pauses, resumes or reschedules beat's tasks, as the
        API's pause and activate do."""
        super().save_related(request, form, formsets, change)
        schedules.sync_orchestration(form.instance)


@admin.register(OrchestrationVersion)
class OrchestrationVersionAdmin(admin.ModelAdmin):
    list_display = ["orchestration", "version", "summary", "created_by", "created_at"]
    list_filter = ["orchestration__organization"]
    search_fields = ["orchestration__name", "summary"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # History, and what runs point at: deleting a version cascaded to every run of it.
        return False


@admin.register(Trigger)
class TriggerAdmin(admin.ModelAdmin):
    list_display = [
        "orchestration",
        "kind",
        "is_active",
        "state",
        "cron_expression",
        "last_run_at",
        "next_run_at",
        "trigger_count",
    ]
    list_filter = ["kind", "state", "is_active"]
    search_fields = ["orchestration__name", "cron_expression"]
    form = TriggerAdminForm
    # A trigger stays with its orchestration: its webhook URL and signing secret were given to
    # senders for that one, and the list offered every organization's.
    readonly_fields = [
        "orchestration",
        "kind",
        "state",
        "state_detail",
        "webhook_token",
        "last_run_at",
        "next_run_at",
        "trigger_count",
        "created_at",
        "updated_at",
    ]

    def has_add_permission(self, request) -> bool:
        """Through the API or the editor, which show a webhook's signing secret once."""
        return False

    def save_model(self, request, obj: Trigger, form, change) -> None:
        super().save_model(request, obj, form, change)
        schedules.sync(obj)

    def delete_model(self, request, obj: Trigger) -> None:
        trigger_service.delete_trigger(obj)

    def delete_queryset(self, request, queryset) -> None:
        for trigger in queryset.select_related("orchestration"):
            trigger_service.delete_trigger(trigger)


@admin.register(ScheduleFiring)
class ScheduleFiringAdmin(admin.ModelAdmin):
    list_display = ["trigger", "slot_key", "slot", "outcome", "run_id", "created_at"]
    list_filter = ["outcome"]
    search_fields = ["trigger__orchestration__name", "slot_key"]
    readonly_fields = ["trigger", "slot", "slot_key", "outcome", "detail", "run_id", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["trigger", "run_id", "created_at"]
    readonly_fields = ["trigger", "signature", "run_id", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(StarterTemplate)
class StarterTemplateAdmin(admin.ModelAdmin):
    """Read-only: the catalog is the files in orchestrator/starters/ (`manage.py load_starters`)."""

    list_display = ["id", "name", "category", "step_count", "updated_at"]
    list_filter = ["category"]
    search_fields = ["id", "name", "description"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PrunedSample)
class PrunedSampleAdmin(admin.ModelAdmin):
    """What deleted runs had counted, which /metrics adds back so counters never go down."""

    list_display = ["organization", "name", "labels", "value"]
    list_filter = ["name"]
    readonly_fields = ["organization", "name", "labels", "value"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookRequestCount)
class WebhookRequestCountAdmin(admin.ModelAdmin):
    """The webhook outcome counters behind /metrics, for a look without Prometheus."""

    list_display = ["outcome", "count"]
    readonly_fields = ["outcome", "count"]

    def has_add_permission(self, request) -> bool:
        return False
