"""Runs are their rows: the Run, one StepRun per node and attempt, and an append-only event log.

Nothing in a worker's memory is needed to know where a run stands, so any worker can pick up
after another one died.
"""

from __future__ import annotations

import uuid

from django.conf import settings as django_settings
from django.db import models
from django.utils import timezone

from orchestrator.choices import TriggerKind
from orchestrator.models import Orchestration, OrchestrationVersion, Organization
from runs.engine import RUN_TERMINAL, RunStatus, StepStatus

USER_MODEL = django_settings.AUTH_USER_MODEL


class RefineStatus(models.TextChoices):
    IDLE = "idle", "Idle"
    REFINING = "refining", "Refining"
    FAILED = "failed", "Failed"


RUN_STATUS_CHOICES = [(s.value, s.value.capitalize()) for s in RunStatus]
STEP_STATUS_CHOICES = [(s.value, s.value.capitalize()) for s in StepStatus]


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="runs")
    # Indexed by the (orchestration, -created_at) index below: no separate FK index to maintain.
    orchestration = models.ForeignKey(
        Orchestration, on_delete=models.CASCADE, related_name="runs", db_index=False
    )
    orchestration_version = models.ForeignKey(
        OrchestrationVersion, on_delete=models.CASCADE, related_name="runs"
    )
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=RUN_STATUS_CHOICES, default="queued")
    trigger_kind = models.CharField(max_length=10, choices=TriggerKind.choices)
    trigger_ref = models.UUIDField(null=True, blank=True)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    output_type = models.CharField(max_length=10, default="markdown")
    shared_state = models.JSONField(default=dict, blank=True)
    error = models.JSONField(null=True, blank=True)
    replays_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replays"
    )
    replay_from_step = models.CharField(max_length=63, blank=True)
    entry_step = models.CharField(
        max_length=63,
        blank=True,
        help_text="The node the run started at (its trigger's node_id); empty: the graph's roots.",
    )
    parent_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    parent_step_id = models.CharField(max_length=63, blank=True)
    # A run an agent step started for a call of an orchestration tool: the step's attempt that
    # waits for it and the call it answers (empty for a subflow step's child or a fired run).
    tool_call_step = models.ForeignKey(
        "StepRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="tool_call_runs"
    )
    tool_call_id = models.CharField(max_length=200, blank=True)
    # Its result went to the step and its cost into the parent run's (once, however many times
    # its end is told).
    tool_call_settled = models.BooleanField(default=False)
    root_run = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="descendants",
        help_text="The fired run at the top of this subflow's tree; empty on that run itself.",
    )
    depth = models.PositiveSmallIntegerField(default=0)
    # The sum of its priced steps (and refines); `unpriced` says some cost is not in it.
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    unpriced = models.BooleanField(
        default=False, help_text="A step (or refine) used a model with no known price."
    )
    tokens_input = models.PositiveBigIntegerField(default=0)
    tokens_output = models.PositiveBigIntegerField(default=0)
    steps_completed = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(
        USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_name = models.CharField(max_length=150, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    idempotency_caller = models.CharField(
        max_length=80,
        blank=True,
        help_text="Who sent the Idempotency-Key (token:<id>, user:<id>, trigger:<id>): a key "
        "is scoped to its caller and the orchestration.",
    )
    idempotency_fingerprint = models.CharField(
        max_length=64,
        blank=True,
        help_text="SHA-256 of what the key came with (input, metadata, entry step): the same "
        "key with another request is refused.",
    )
    cancel_requested = models.BooleanField(default=False)
    budget_hold = models.BooleanField(
        default=False, help_text="Over its credit limit, waiting for approval to raise it."
    )
    credit_limit = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    refine_status = models.CharField(
        max_length=10, choices=RefineStatus.choices, default=RefineStatus.IDLE
    )
    refine_error = models.TextField(blank=True, help_text="Why the last refine failed.")
    refine_started_at = models.DateTimeField(
        null=True, blank=True, help_text="When the refine in progress was asked for."
    )
    last_seq = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="From the run_timeout_s setting."
    )

    class Meta:
        ordering = ["-created_at"]
        # Each list and page reads its newest rows from an index in order, whatever the filter,
        # so a page costs the same with a year of runs as with a few: without the status and
        # orchestration ones, a filtered list sorted or skipped through every matching run.
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(
                fields=["organization", "status", "-created_at"], name="run_org_status_newest"
            ),
            models.Index(fields=["orchestration", "-created_at"], name="run_flow_newest"),
            models.Index(
                fields=["orchestration", "status", "-created_at"], name="run_flow_status_newest"
            ),
            models.Index(fields=["orchestration", "idempotency_key"]),
            # Retention looks for fired runs that ended long ago: a small index, since runs
            # in progress and subflow children are not in it.
            models.Index(
                fields=["finished_at"],
                name="run_finished_root",
                condition=models.Q(
                    status__in=sorted(s.value for s in RUN_TERMINAL), root_run__isnull=True
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.id} of {self.orchestration_id} ({self.status})"

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None:
            return None
        end = self.finished_at
        if end is None:
            return None
        return int((end - self.started_at).total_seconds() * 1000)


class StepRun(models.Model):
    """One attempt of one node. A retry or a re-queue after a lost worker adds a row."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by the (run, node_id, attempt) constraint: no separate FK index to maintain.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="step_runs", db_index=False)
    node_id = models.CharField(max_length=63)
    node_type = models.CharField(max_length=20)
    attempt = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=10, choices=STEP_STATUS_CHOICES, default="pending")
    input = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    wake_at = models.DateTimeField(
        null=True, blank=True, help_text="Pending: not before. Waiting: when the timer fires."
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    edges_taken = models.JSONField(
        null=True, blank=True, help_text="Outgoing edge ids decided when the step ended."
    )
    child_run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model = models.CharField(max_length=200, blank=True)
    tokens_input = models.PositiveIntegerField(default=0)
    tokens_output = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        default=0,
        null=True,
        blank=True,
        help_text="Null when its model has no known price (never a silent 0).",
    )
    turns = models.PositiveIntegerField(default=0)
    tool_calls = models.PositiveIntegerField(default=0)
    transcript = models.JSONField(
        null=True,
        blank=True,
        help_text="An agent step's conversation so far (model calls and tool results), kept as "
        "it happens: an attempt after a lost worker goes on from it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "node_id", "attempt"], name="step_attempt_unique"
            )
        ]
        # Partial: only unfinished steps are looked up by the reaper, and most rows are
        # written finished (inline transforms), so they cost these indexes nothing.
        indexes = [
            models.Index(
                fields=["lease_expires_at"],
                name="step_running_lease",
                condition=models.Q(status="running"),
            ),
            models.Index(
                fields=["wake_at"],
                name="step_open_wake",
                condition=models.Q(status__in=["pending", "waiting"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.node_id}#{self.attempt} ({self.status})"

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)

    @property
    def unpriced(self) -> bool:
        """Its model has no known price, so its cost is unknown (not zero)."""
        return self.cost_usd is None


class RunEvent(models.Model):
    """The live trace. `seq` is allocated under the run's row lock, so it has no gaps."""

    # Indexed by the (run, seq) constraint: no separate FK index to maintain.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events", db_index=False)
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=40)
    step_id = models.CharField(max_length=63, blank=True)
    data = models.JSONField(default=dict, blank=True)
    ts = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="event_seq_unique")]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.type}"


class OutputVersion(models.Model):
    """One version of a run's output. Version 1 is the original, stored when first refined."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="output_versions")
    version = models.PositiveIntegerField()
    output = models.JSONField(null=True, blank=True)
    output_type = models.CharField(max_length=10, default="markdown")
    prompt = models.TextField(blank=True, help_text="The refine prompt; empty for the original.")
    requested_by_name = models.CharField(max_length=150, blank=True)
    # What the refine that wrote this version used (zero for the original); the run's totals
    # include it.
    tokens_input = models.PositiveIntegerField(default=0)
    tokens_output = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(
        max_digits=14, decimal_places=6, default=0, null=True, blank=True
    )
    # Not auto_now_add: the original version is dated when the run finished, not when stored.
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["run", "version"], name="output_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.run_id} v{self.version}"


class ShareLink(models.Model):
    """A public link to a run's output. Revoked links are kept, so a token never comes back."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="share_links")
    token = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run"],
                condition=models.Q(revoked_at__isnull=True),
                name="share_link_one_live_per_run",
            )
        ]

    def __str__(self) -> str:
        return f"share of {self.run_id}" + (" (revoked)" if self.revoked_at else "")
