"""Status and role vocabularies shared by models, serializers and filters."""

from __future__ import annotations

from django.db import models


class OrchestrationStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"


class CredentialKind(models.TextChoices):
    API_KEY = "api_key", "API key"
    BEARER = "bearer", "Bearer token"
    BASIC = "basic", "Basic auth (user:password)"
    HEADER = "header", "Custom header (Name: value)"


class McpServerStatus(models.TextChoices):
    """Set by listing the server's tools (on create and on refresh)."""

    PENDING = "pending", "Not checked yet"
    OK = "ok", "Tools listed"
    ERROR = "error", "Could not list tools"


class TriggerKind(models.TextChoices):
    """How a run was started (`Run.trigger_kind`); a Trigger row is one of `TRIGGER_ROW_KINDS`."""

    MANUAL = "manual", "Manual"
    API = "api", "API"
    WEBHOOK = "webhook", "Webhook"
    SCHEDULE = "schedule", "Schedule"
    REPLAY = "replay", "Replay"
    SUBFLOW = "subflow", "Subflow"


# The kinds a person sets up as a Trigger; the others start runs without one.
TRIGGER_ROW_KINDS: tuple[TriggerKind, ...] = (
    TriggerKind.MANUAL,
    TriggerKind.WEBHOOK,
    TriggerKind.SCHEDULE,
)
TRIGGER_ROW_CHOICES: list[tuple[str, str]] = [
    (kind.value, kind.label) for kind in TRIGGER_ROW_KINDS
]


class TriggerState(models.TextChoices):
    LIVE = "live", "Live"
    PAUSED = "paused", "Paused"
    ERROR = "error", "Error"


class ScheduleOverlap(models.TextChoices):
    SKIP = "skip", "Skip while the previous run is going"
    ALLOW = "allow", "Allow overlapping runs"


class ScheduleOutcome(models.TextChoices):
    """What became of one slot of a schedule (`ScheduleFiring.outcome`)."""

    FIRED = "fired", "Fired a run"
    MISSED = "missed", "Missed (catchup: none)"
    SKIPPED = "skipped", "Skipped: the previous run was still going"
    ERROR = "error", "Error: the run was refused"


class ScheduleCatchup(models.TextChoices):
    NONE = "none", "Fire nothing missed"
    LATEST = "latest", "Fire the latest missed slot once"


class BudgetAction(models.TextChoices):
    FAIL = "fail", "Fail the run"
    APPROVE = "approve", "Ask for approval to raise the limit"
