"""Creating triggers: webhook tokens and signing secrets, and the next slot of a schedule."""

from __future__ import annotations

import secrets
from datetime import datetime
from zoneinfo import ZoneInfo

from croniter import croniter
from django.utils import timezone

from orchestrator import crypto
from orchestrator.choices import TriggerKind
from orchestrator.models import Orchestration, Trigger

TRIGGER_FIELDS = (
    "kind",
    "node_id",
    "is_active",
    "input_schema",
    "input",
    "cron_expression",
    "timezone",
    "overlap",
    "catchup",
)


def next_slot(cron_expression: str, tz_name: str, after: datetime | None = None) -> datetime:
    """The next time the expression fires, computed in the trigger's zone, returned in UTC.

    day_or=False makes day-of-month AND day-of-week both hold, as Celery's crontab does.
    """
    zone = ZoneInfo(tz_name)
    start = (after or timezone.now()).astimezone(zone)
    slot = croniter(cron_expression, start, day_or=False).get_next(datetime)
    return slot.astimezone(ZoneInfo("UTC"))


def new_signing_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def update_trigger(trigger: Trigger, data: dict) -> Trigger:
    for field in TRIGGER_FIELDS:
        if field in data and field != "kind":
            setattr(trigger, field, data[field])
    if trigger.kind == TriggerKind.SCHEDULE:
        trigger.next_run_at = next_slot(trigger.cron_expression, trigger.timezone)
    trigger.save()
    return trigger


def delete_trigger(trigger: Trigger) -> None:
    trigger.delete()


def rotate_secret(trigger: Trigger) -> Trigger:
    """The old secret keeps working for 24 hours, so senders can switch without downtime."""
    raw = new_signing_secret()
    trigger.encrypted_previous_secret = trigger.encrypted_signing_secret
    trigger.encrypted_signing_secret = crypto.encrypt(raw)
    trigger.secret_rotated_at = timezone.now()
    trigger.save()
    trigger.signing_secret = raw
    return trigger


def create_trigger(orchestration: Orchestration, data: dict) -> Trigger:
    """Returns the trigger with `signing_secret` set on the instance: the only time it is shown."""
    trigger = Trigger(orchestration=orchestration)
    for field in TRIGGER_FIELDS:
        if field in data:
            setattr(trigger, field, data[field])
    raw_secret = None
    if trigger.kind == TriggerKind.WEBHOOK:
        trigger.webhook_token = secrets.token_urlsafe(24)
        raw_secret = new_signing_secret()
        trigger.encrypted_signing_secret = crypto.encrypt(raw_secret)
    if trigger.kind == TriggerKind.SCHEDULE:
        trigger.next_run_at = next_slot(trigger.cron_expression, trigger.timezone)
    trigger.save()
    trigger.signing_secret = raw_secret
    return trigger
