"""Creating triggers: webhook tokens and signing secrets, and the next slot of a schedule."""

from __future__ import annotations

import secrets

from django.utils import timezone

from orchestrator import crypto
from orchestrator.choices import TriggerKind
from orchestrator.models import Orchestration, Trigger
from orchestrator.services import schedules

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


def new_signing_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def update_trigger(trigger: Trigger, data: dict) -> Trigger:
    for field in TRIGGER_FIELDS:
        if field in data and field != "kind":
            setattr(trigger, field, data[field])
    trigger.save()
    schedules.sync(trigger)
    trigger.refresh_from_db()
    return trigger


def delete_trigger(trigger: Trigger) -> None:
    schedules.remove(trigger)
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
        trigger.next_run_at = schedules.next_slot(trigger.cron_expression, trigger.timezone)
    trigger.save()
    schedules.sync(trigger)
    trigger.refresh_from_db()
    trigger.signing_secret = raw_secret
    return trigger
