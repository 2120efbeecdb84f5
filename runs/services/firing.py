"""Firing runs from triggers: a webhook delivery accepted once per signature, a schedule slot
fired once per slot. What a trigger is and how its slots fall is `orchestrator`'s
(orchestrator/services/webhooks.py and schedules.py); starting the run is this app's."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.domain_errors import DomainError
from core.types import Pk
from orchestrator.choices import (
    ScheduleCatchup,
    ScheduleOutcome,
    ScheduleOverlap,
    TriggerKind,
    TriggerState,
)
from orchestrator.models import ScheduleFiring, Trigger, WebhookDelivery
from orchestrator.services import schedules, webhooks
from runs.engine import RUN_TERMINAL
from runs.models import Run
from runs.services import lifecycle


@dataclass(frozen=True)
class Accepted:
    """What a delivery came to: its run, and whether that run was started by an earlier one
    (the same signature, or an Idempotency-Key seen before), so nothing new started."""

    run_id: uuid.UUID | None
    duplicate: bool


def accept(
    orchestration_id: str, token: str, header: str, body: bytes, *, idempotency_key: str = ""
) -> Accepted:
    """Verify a delivery and fire its run, once per signature.

    Raises SignatureError for a wrong token, signature or time (the caller answers every one
    alike), TriggerMismatch for a paused trigger or a body that does not fit, and the errors
    of `lifecycle.fire` (an orchestration that is not active, a reused Idempotency-Key).
    """
    trigger = webhooks.find_trigger(orchestration_id, token)
    signature = webhooks.verify(trigger, header, body)
    payload = webhooks.check_payload(trigger, body)
    digest = hashlib.sha256(signature.encode()).hexdigest()
    with transaction.atomic():
        try:
            with transaction.atomic():
                delivery = WebhookDelivery.objects.create(trigger=trigger, signature=digest)
        except IntegrityError:
            earlier = WebhookDelivery.objects.get(signature=digest)
            return Accepted(run_id=earlier.run_id, duplicate=True)
        run, created = lifecycle.fire(
            trigger.orchestration,
            {**trigger.input, **payload},
            trigger_kind=TriggerKind.WEBHOOK,
            trigger_ref=trigger.pk,
            entry_node=trigger.node_id,
            idempotency_key=idempotency_key,
            caller=f"trigger:{trigger.pk}",
        )
        delivery.run_id = run.pk
        delivery.save(update_fields=["run_id"])
        if created:
            # Counted in the database: concurrent deliveries each add one.
            Trigger.objects.filter(pk=trigger.pk).update(
                last_run_at=timezone.now(), trigger_count=F("trigger_count") + 1
            )
    return Accepted(run_id=run.pk, duplicate=not created)


def fire(trigger_id: Pk, now: datetime | None = None) -> ScheduleFiring | None:
    """Fire the slot due at `now` (beat's call, or the reaper's), once per slot ever."""
    now = now or timezone.now()
    trigger = Trigger.objects.select_related("orchestration").filter(pk=trigger_id).first()
    if trigger is None or not schedules.is_live(trigger):
        return None
    latest, instant = schedules.last_slot(trigger.cron_expression, trigger.timezone, now)
    late = now - instant > schedules.LATE_AFTER
    outcome, detail = ScheduleOutcome.FIRED, ""
    if (
        late
        and trigger.catchup == ScheduleCatchup.NONE
        and (trigger.last_run_at is None or trigger.last_run_at < instant)
    ):
        outcome, detail = (
            ScheduleOutcome.MISSED,
            "the slot passed while nothing was running (catchup: none)",
        )
    fired = None
    for wall in schedules.slots_at(trigger.cron_expression, trigger.timezone, latest, instant):
        fired = _fire_slot(trigger, wall, instant, now, outcome, detail) or fired
    return fired


def _fire_slot(
    trigger: Trigger,
    wall: datetime,
    instant: datetime,
    now: datetime,
    outcome: ScheduleOutcome,
    detail: str,
) -> ScheduleFiring | None:
    with transaction.atomic():
        try:
            with transaction.atomic():
                firing = ScheduleFiring.objects.create(
                    trigger=trigger,
                    slot=instant,
                    slot_key=wall.strftime("%Y-%m-%dT%H:%M"),
                    outcome=outcome,
                    detail=detail,
                )
        except IntegrityError:
            return None  # this slot already fired (a second beat, a redelivered task)
        busy = (
            trigger.overlap == ScheduleOverlap.SKIP
            and Run.objects.filter(trigger_ref=trigger.pk, trigger_kind=TriggerKind.SCHEDULE)
            .exclude(status__in=RUN_TERMINAL)
            .exists()
        )
        if outcome == ScheduleOutcome.FIRED and busy:
            firing.outcome = ScheduleOutcome.SKIPPED
            firing.detail = "the previous run is still going"
        elif outcome == ScheduleOutcome.FIRED:
            try:
                run, _ = lifecycle.fire(
                    trigger.orchestration,
                    dict(trigger.input),
                    trigger_kind=TriggerKind.SCHEDULE,
                    trigger_ref=trigger.pk,
                    entry_node=trigger.node_id,
                )
            except DomainError as exc:
                firing.outcome, firing.detail = ScheduleOutcome.ERROR, exc.detail[:500]
                Trigger.objects.filter(pk=trigger.pk).update(
                    state=TriggerState.ERROR, state_detail=firing.detail
                )
            else:
                firing.run_id = run.pk
                Trigger.objects.filter(pk=trigger.pk).update(
                    last_run_at=instant,
                    trigger_count=F("trigger_count") + 1,
                    state=TriggerState.LIVE,
                    state_detail="",
                )
        firing.save()
        Trigger.objects.filter(pk=trigger.pk).update(
            next_run_at=schedules.next_slot(trigger.cron_expression, trigger.timezone, now)
        )
    return firing
