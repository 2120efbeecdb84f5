"""Creating triggers: webhook tokens and signing secrets, and the next slot of a schedule."""

from __future__ import annotations

import secrets
from typing import Any

from django.utils import timezone

from core import crypto
from core.domain_errors import InvalidRequest
from orchestrator.choices import TriggerKind
from orchestrator.definition import DefinitionError, validate_run_input
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


def check_entry(orchestration: Orchestration, node_id: str) -> None:
    """A trigger's entry node must be a step of the orchestration's current definition.

    A later version may still drop it: firing such a trigger is then refused (see
    `runs.services.creation.trigger_entry`), so nothing starts where its owner did not choose.
    """
    if not node_id:
        return
    steps = [node["id"] for node in orchestration.definition.get("nodes", [])]
    if node_id not in steps:
        raise InvalidRequest(
            f"node_id: version {orchestration.version} of the definition has no step '{node_id}'.",
            fields={"node_id": [f"no step '{node_id}'; steps: {_listing(steps)}"]},
        )


def kind_problem(kind: str, cron_expression: str) -> str | None:
    """What is wrong with a trigger's cron expression for its kind: a schedule runs on one, and
    no other kind uses one."""
    if kind == TriggerKind.SCHEDULE and not cron_expression:
        return "a schedule trigger needs a cron expression"
    if kind != TriggerKind.SCHEDULE and cron_expression:
        return (
            f"only a schedule trigger runs on a cron expression; a {kind} trigger would never "
            "use it"
        )
    return None


def check_fixed_input(
    orchestration: Orchestration, kind: str, fixed: dict[str, Any], *, where: str = ""
) -> None:
    """A trigger's fixed `input` must fit the current definition's declared inputs. A
    schedule's is the whole input of every run it starts: one that misses a required input or
    gives one of the wrong type failed each slot, out of sight. A webhook's or manual trigger's
    is completed by each request, so only what it gives is checked. A later version may still
    change the inputs; a slot refused then puts the trigger in `error`, with why in
    `state_detail`. `where`: the trigger's own JSON path in the request, if not its root."""
    try:
        validate_run_input(
            orchestration.definition.get("inputs", []),
            fixed,
            partial=kind != TriggerKind.SCHEDULE,
        )
    except DefinitionError as exc:
        fields = {
            f"{where}.{path}" if where else path: messages
            for path, messages in exc.errors_by_path().items()
        }
        path, messages = next(iter(fields.items()))
        raise InvalidRequest(
            f"{path}: {messages[0]} (the declared inputs of version {orchestration.version})",
            fields=fields,
        ) from None


def _listing(steps: list[str], most: int = 20) -> str:
    shown = ", ".join(steps[:most])
    return shown if len(steps) <= most else f"{shown} and {len(steps) - most} more"


def update_trigger(trigger: Trigger, data: dict[str, Any]) -> Trigger:
    if "node_id" in data:
        check_entry(trigger.orchestration, data["node_id"])
    if "input" in data:
        check_fixed_input(trigger.orchestration, trigger.kind, data["input"])
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


def create_trigger(
    orchestration: Orchestration, data: dict[str, Any], *, where: str = ""
) -> Trigger:
    """Returns the trigger with `signing_secret` set on the instance: the only time it is shown.
    `where`: the trigger's JSON path in the request, when it came inside another object."""
    check_entry(orchestration, data.get("node_id", ""))
    check_fixed_input(orchestration, data["kind"], data.get("input", {}), where=where)
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
