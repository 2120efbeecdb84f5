"""Orchestrations, their immutable version history, tags and triggers."""

from __future__ import annotations

import uuid

from django.conf import settings as django_settings
from django.db import models

from orchestrator.choices import (
    TRIGGER_ROW_CHOICES,
    OrchestrationStatus,
    ScheduleCatchup,
    ScheduleOutcome,
    ScheduleOverlap,
    TriggerState,
)
from orchestrator.models.library import Group
from orchestrator.models.tenancy import Organization

# A module constant because `settings` is also a field name of the models below.
USER_MODEL = django_settings.AUTH_USER_MODEL


class OrchestrationQuerySet(models.QuerySet["Orchestration"]):
    def alive(self) -> OrchestrationQuerySet:
        return self.filter(deleted_at__isnull=True)

    def by_key(self, key: str) -> Orchestration | None:
        """The one a URL or a reference names: by id, or by slug. A deleted orchestration's slug
        is free for a new one, so on a queryset that holds deleted rows the alive one wins, then
        the latest deleted."""
        try:
            return self.filter(pk=uuid.UUID(str(key))).first()
        except ValueError:
            return (
                self.filter(slug=key)
                .order_by(models.F("deleted_at").desc(nulls_first=True))
                .first()
            )


class Orchestration(models.Model):
    """The current state of an orchestration; every change of its definition adds a version row.

    `etag` changes on every write, so `If-Match` protects all fields, not just the definition.
    `step_count` and `member_ids` are kept from the definition at write time so that lists never
    load definitions.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="orchestrations"
    )
    # Set on the instance by `create_orchestration` only: the one answer that shows them.
    new_trigger_secrets: dict[str, str]
    slug = models.SlugField(max_length=120)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    icon = models.CharField(max_length=64, blank=True)
    icon_color = models.CharField(max_length=32, blank=True)
    zone = models.CharField(max_length=100, blank=True, db_index=True)
    group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="orchestrations"
    )
    owner = models.ForeignKey(
        USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_orchestrations",
    )
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=10, choices=OrchestrationStatus.choices, default=OrchestrationStatus.DRAFT
    )
    is_public = models.BooleanField(default=False)
    public_definition = models.BooleanField(default=False)
    credit_limit = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    settings = models.JSONField(default=dict, blank=True)
    definition = models.JSONField(default=dict)
    markdown = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    etag = models.CharField(max_length=40, editable=False)
    step_count = models.PositiveIntegerField(default=0)
    member_ids = models.JSONField(default=list, blank=True)
    forked_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forks"
    )
    fork_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = OrchestrationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "slug"],
                condition=models.Q(deleted_at__isnull=True),
                name="orchestration_slug_unique_alive",
            )
        ]
        indexes = [models.Index(fields=["organization", "status"])]

    def __str__(self) -> str:
        return self.name


class OrchestrationTag(models.Model):
    """Tags live in rows, not a JSON list, so filtering by tag works the same on SQLite."""

    orchestration = models.ForeignKey(
        Orchestration, on_delete=models.CASCADE, related_name="tag_rows"
    )
    name = models.CharField(max_length=64, db_index=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["orchestration", "name"], name="tag_unique")]

    def __str__(self) -> str:
        return self.name


class OrchestrationVersion(models.Model):
    """An immutable snapshot of what a PUT or PATCH replaced; runs pin one of these."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    orchestration = models.ForeignKey(
        Orchestration, on_delete=models.CASCADE, related_name="versions"
    )
    version = models.PositiveIntegerField()
    etag = models.CharField(max_length=40)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    settings = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    definition = models.JSONField(default=dict)
    markdown = models.TextField(blank=True)
    summary = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["orchestration", "version"], name="version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.orchestration} v{self.version}"


class Trigger(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    orchestration = models.ForeignKey(
        Orchestration, on_delete=models.CASCADE, related_name="triggers"
    )
    kind = models.CharField(max_length=10, choices=TRIGGER_ROW_CHOICES)
    node_id = models.CharField(max_length=63, blank=True)
    is_active = models.BooleanField(default=True)
    state = models.CharField(max_length=10, choices=TriggerState.choices, default=TriggerState.LIVE)
    state_detail = models.CharField(
        max_length=500, blank=True, help_text="Why the trigger is in the error state."
    )
    input_schema = models.JSONField(null=True, blank=True)
    input = models.JSONField(default=dict, blank=True)
    cron_expression = models.CharField(max_length=120, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    overlap = models.CharField(
        max_length=8, choices=ScheduleOverlap.choices, default=ScheduleOverlap.SKIP
    )
    catchup = models.CharField(
        max_length=8, choices=ScheduleCatchup.choices, default=ScheduleCatchup.NONE
    )
    webhook_token = models.CharField(max_length=64, blank=True, db_index=True)
    encrypted_signing_secret = models.TextField(blank=True, editable=False)
    # Set on the instance when a secret is made (services.triggers): the one time it is shown.
    signing_secret: str | None
    encrypted_previous_secret = models.TextField(blank=True, editable=False)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    trigger_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.kind} trigger of {self.orchestration}"


class WebhookDelivery(models.Model):
    """One accepted signed request; the unique signature makes a replayed one start nothing."""

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="deliveries")
    signature = models.CharField(max_length=64, unique=True)
    run_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"delivery {self.signature[:12]} of {self.trigger_id}"


class ScheduleFiring(models.Model):
    """One slot of a schedule trigger. The unique (trigger, slot) makes each slot fire at most
    once, whatever beat or the broker do twice."""

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="firings")
    slot = models.DateTimeField(help_text="The instant the slot was due.")
    slot_key = models.CharField(
        max_length=16, help_text="The slot's wall-clock time in the trigger's zone."
    )
    run_id = models.UUIDField(null=True, blank=True)
    outcome = models.CharField(
        max_length=20, choices=ScheduleOutcome.choices, default=ScheduleOutcome.FIRED
    )
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-slot"]
        constraints = [
            models.UniqueConstraint(fields=["trigger", "slot_key"], name="one_firing_per_slot")
        ]

    def __str__(self) -> str:
        return f"{self.trigger_id} @ {self.slot:%Y-%m-%d %H:%M} ({self.outcome})"
