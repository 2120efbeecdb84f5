"""Cron schedules: each active schedule trigger is a celery-beat PeriodicTask, and each slot
fires at most once.

A slot is identified by its wall-clock time in the trigger's zone, so a daylight-saving change
neither skips nor doubles it: a wall time that happens twice (clocks go back) fires the first
time; one that never happens (clocks go forward) fires at the same instant shifted by the gap,
beside the slot already there if there is one (hourly: 02:00 and 03:00 both fire at 03:00).
Slots are computed on naive wall-clock times, where cron has no DST ambiguity, then placed.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import crontab
from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from core.types import Pk
from orchestrator.choices import OrchestrationStatus, TriggerKind, TriggerState
from orchestrator.models import Orchestration, Trigger

logger = logging.getLogger(__name__)
# Beat fires a little after the slot; later than this, the slot counts as missed (downtime).
LATE_AFTER = timedelta(seconds=120)
TASK = "runs.tasks.fire_schedule"


# Month and weekday names are the only words both croniter and celery's crontab read alike.
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
CRON_NAMES = frozenset((*MONTHS, "sun", "mon", "tue", "wed", "thu", "fri", "sat"))


def task_name(trigger: Trigger) -> str:
    return f"trigger-{trigger.pk}"


def normalize_cron(expression: str) -> str:
    """The expression as stored: its fields separated by single spaces."""
    return " ".join(expression.split())


def zone_problem(name: str) -> str | None:
    """Why `name` cannot be a schedule's time zone, or None."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"'{name}' is not an IANA time zone"
    return None


def cron_problem(expression: str) -> str | None:
    """Why a 5-field expression cannot be a schedule, or None.

    Beat decides when to send with celery's crontab and `runs.services.firing.fire` decides which
    slot is due with croniter, so both must read the expression alike. Celery reads `MON#2` as every
    Monday (beat then sent the task on Mondays whose slot had not come, and `catchup: latest` fired
    a slot that never was) and drops an entry it cannot parse (`L`, `7` for Sunday) without a word;
    and an expression that never occurs (`0 9 31 2 *`) made computing `next_run_at` fail.
    """
    fields = expression.split()
    if len(fields) != 5:
        return "must have 5 fields: minute hour day-of-month month day-of-week"
    for field in fields:
        for token in re.split(r"[,/-]", field):
            if not (token == "*" or token.isdigit() or token.lower() in CRON_NAMES):
                return (
                    f"'{token}' is not supported: use numbers, ranges, lists, steps, * and "
                    "month or weekday names (no L, W, # or ?)"
                )
    minute, hour, day_of_month, month, day_of_week = fields
    if "7" in re.split(r"[,/-]", day_of_week):
        return "day-of-week runs from 0 (Sunday) to 6 (Saturday)"
    try:
        schedule = crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month,
            day_of_week=day_of_week,
        )
        expanded, _ = croniter.expand(expression)
        croniter(expression, datetime(2000, 1, 1), day_or=False).get_next(datetime)
    except (ValueError, CroniterBadCronError, CroniterBadDateError) as exc:
        return f"'{expression}' is not a valid cron expression ({exc})"
    # celery-types does not declare the sets crontab parses its fields into.
    beat = [
        schedule.minute,  # type: ignore[attr-defined]
        schedule.hour,  # type: ignore[attr-defined]
        schedule.day_of_month,  # type: ignore[attr-defined]
        schedule.month_of_year,  # type: ignore[attr-defined]
        schedule.day_of_week,  # type: ignore[attr-defined]
    ]
    for values, sent in zip(expanded, beat, strict=True):
        if values != ["*"] and {int(value) for value in values} != set(sent):
            return f"'{expression}' is read differently by celery beat and croniter"
    return None


def place(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a naive wall-clock time (the first one, if it happens twice)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def last_slot(expression: str, zone_name: str, now: datetime) -> tuple[datetime, datetime]:
    """(wall-clock slot, its instant): the latest slot due at or before `now`."""
    zone = ZoneInfo(zone_name)
    wall_now = now.astimezone(zone).replace(tzinfo=None)
    wall = croniter(expression, wall_now + timedelta(seconds=1), day_or=False).get_prev(datetime)
    instant = place(wall, zone)
    if instant > now:  # a wall time in a gap placed after `now`: the one before is due
        wall = croniter(expression, wall, day_or=False).get_prev(datetime)
        instant = place(wall, zone)
    return wall, instant


def next_slot(expression: str, zone_name: str, now: datetime | None = None) -> datetime:
    zone = ZoneInfo(zone_name)
    now = now or timezone.now()
    wall = croniter(expression, now.astimezone(zone).replace(tzinfo=None), day_or=False).get_next(
        datetime
    )
    instant = place(wall, zone)
    while instant <= now:
        wall = croniter(expression, wall, day_or=False).get_next(datetime)
        instant = place(wall, zone)
    return instant


def _can_fire(trigger: Trigger) -> bool:
    orchestration = trigger.orchestration
    return (
        trigger.is_active
        and orchestration.deleted_at is None
        and orchestration.status == OrchestrationStatus.ACTIVE
    )


def is_live(trigger: Trigger) -> bool:
    return trigger.kind == TriggerKind.SCHEDULE and _can_fire(trigger)


def sync(trigger: Trigger) -> None:
    """Make the trigger's `state` and `next_run_at`, and beat's PeriodicTask, follow whether it
    can fire: a paused trigger or orchestration keeps its task, disabled (the admin shows it
    paused, and re-enabling does not fire the slots it slept through: django-celery-beat forgets
    a disabled task's last run); a deleted orchestration's task is removed."""
    live = _can_fire(trigger)
    state = TriggerState.LIVE if live else TriggerState.PAUSED
    if trigger.kind != TriggerKind.SCHEDULE:
        Trigger.objects.filter(pk=trigger.pk).update(state=state, state_detail="")
        return
    if trigger.orchestration.deleted_at is not None:
        remove(trigger)
        Trigger.objects.filter(pk=trigger.pk).update(state=state, state_detail="", next_run_at=None)
        return
    minute, hour, day_of_month, month, day_of_week = trigger.cron_expression.split()
    crontab_schedule, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month,
        day_of_week=day_of_week,
        timezone=trigger.timezone,
    )
    PeriodicTask.objects.update_or_create(
        name=task_name(trigger),
        defaults={
            "task": TASK,
            "crontab": crontab_schedule,
            "interval": None,
            "args": json.dumps([str(trigger.pk)]),
            "enabled": live,
            "description": f"Schedule of {trigger.orchestration.name}",
        },
    )
    # A paused trigger fires at no time: a next_run_at kept from before would soon be in the past.
    Trigger.objects.filter(pk=trigger.pk).update(
        state=state,
        state_detail="",
        next_run_at=next_slot(trigger.cron_expression, trigger.timezone) if live else None,
    )


def sync_orchestration(orchestration: Orchestration) -> None:
    for trigger in orchestration.triggers.all():
        sync(trigger)


def remove(trigger: Trigger) -> None:
    remove_tasks([trigger.pk])


def remove_tasks(trigger_ids: list[Pk]) -> None:
    """Beat's tasks of these triggers, which are being deleted (or already are: an admin
    deletion leaves only their ids)."""
    PeriodicTask.objects.filter(name__in=[f"trigger-{pk}" for pk in trigger_ids]).delete()
    PeriodicTasks.update_changed()


def slots_at(expression: str, zone_name: str, wall: datetime, instant: datetime) -> list[datetime]:
    """The wall-clock slots placed at `instant`: `wall`, and one that fell in a gap and was
    shifted onto the same instant (an hourly schedule's 02:00 when clocks jump to 03:00)."""
    zone = ZoneInfo(zone_name)
    walls = {wall}
    for moment in (instant, instant - timedelta(days=1)):
        offset = moment.astimezone(zone).utcoffset()
        assert offset is not None  # an aware datetime in a ZoneInfo always has one
        shifted = (instant + offset).replace(tzinfo=None)
        if croniter.match(expression, shifted, day_or=False) and place(shifted, zone) == instant:
            walls.add(shifted)
    return sorted(walls)


def due_triggers(now: datetime) -> list[UUID]:
    """Schedule triggers whose next slot has come: the reaper fires them if beat did not."""
    return list(
        Trigger.objects.filter(
            kind=TriggerKind.SCHEDULE,
            is_active=True,
            state=TriggerState.LIVE,
            next_run_at__lte=now - timedelta(seconds=30),
        ).values_list("pk", flat=True)
    )
