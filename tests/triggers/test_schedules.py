"""Cron schedules: beat tasks follow the triggers, and each slot fires at most once, through
DST changes, duplicate deliveries and downtime (a controlled clock, no sleeping)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from unittest.mock import patch

import pytest
from django_celery_beat.models import PeriodicTask

from orchestrator.models import ScheduleFiring, Trigger
from orchestrator.services.orchestrations import activate, create_orchestration, pause
from orchestrator.services.schedules import next_slot
from runs.models import Run
from runs.services import firing as schedules

pytestmark = pytest.mark.django_db


def make(org, cron="30 2 * * *", tz="Europe/Paris", status="active", **trigger):
    orchestration = create_orchestration(
        org,
        {
            "name": "Nightly",
            "status": status,
            "definition": {"nodes": [{"id": "wait", "type": "delay", "config": {"seconds": 3600}}]},
            "triggers": [{"kind": "schedule", "cron_expression": cron, "timezone": tz, **trigger}],
        },
    )
    return orchestration, orchestration.triggers.get()


def minutes(start: datetime, end: datetime):
    at = start
    while at <= end:
        yield at
        at += timedelta(minutes=1)


def test_an_active_schedule_is_a_beat_task_in_its_time_zone(org):
    _orchestration, trigger = make(org, cron="15 9 * * 1-5", tz="America/New_York")
    task = PeriodicTask.objects.get(name=f"trigger-{trigger.pk}")
    assert task.task == "runs.tasks.fire_schedule"
    assert json.loads(task.args) == [str(trigger.pk)]
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("15", "9", "1-5")
    assert str(task.crontab.timezone) == "America/New_York"
    trigger.refresh_from_db()
    assert trigger.state == "live"
    assert trigger.next_run_at is not None


def test_pausing_disables_the_beat_task_and_deleting_removes_it(org, editor):
    orchestration, trigger = make(org)

    def task():
        return PeriodicTask.objects.filter(name=f"trigger-{trigger.pk}").first()

    pause(orchestration)
    assert task().enabled is False
    paused = Trigger.objects.get(pk=trigger.pk)
    assert (paused.state, paused.next_run_at) == ("paused", None)
    activate(orchestration)
    assert task().enabled is True
    assert Trigger.objects.get(pk=trigger.pk).next_run_at is not None
    editor.patch(f"/api/v1/triggers/{trigger.pk}", {"is_active": False}, format="json")
    assert task().enabled is False
    editor.patch(f"/api/v1/triggers/{trigger.pk}", {"is_active": True}, format="json")
    assert task().enabled is True
    editor.delete(f"/api/v1/orchestrations/{orchestration.pk}")
    assert task() is None
    _, other = make(org)
    editor.delete(f"/api/v1/triggers/{other.pk}")
    assert not PeriodicTask.objects.filter(name=f"trigger-{other.pk}").exists()


def test_a_resumed_schedule_does_not_fire_the_slots_it_slept_through(org):
    """django-celery-beat forgets a disabled task's last run, so beat counts from the resume."""
    from django_celery_beat.schedulers import ModelEntry

    from config.celery import app

    orchestration, trigger = make(org, cron="* * * * *", tz="UTC")
    task = PeriodicTask.objects.get(name=f"trigger-{trigger.pk}")
    PeriodicTask.objects.filter(pk=task.pk).update(
        last_run_at=datetime(2020, 1, 1, tzinfo=UTC)
    )  # as if beat ran it long ago
    pause(orchestration)
    activate(orchestration)
    entry = ModelEntry(PeriodicTask.objects.get(pk=task.pk), app=app)
    assert entry.last_run_at > datetime(2025, 1, 1, tzinfo=UTC)


def test_a_draft_orchestrations_schedule_waits_for_activation(org):
    orchestration, trigger = make(org, status="draft")
    assert not PeriodicTask.objects.filter(enabled=True, name__startswith="trigger-").exists()
    assert Trigger.objects.get(pk=trigger.pk).state == "paused"
    activate(orchestration)
    assert PeriodicTask.objects.get(name=f"trigger-{trigger.pk}").enabled is True


def test_a_slot_fires_once_even_when_delivered_twice_or_by_two_beats(org):
    _, trigger = make(org, cron="*/5 * * * *", tz="UTC", input={"source": "cron"}, overlap="allow")
    slot = datetime(2026, 5, 4, 10, 5, tzinfo=UTC)
    first = schedules.fire(trigger.pk, slot + timedelta(seconds=1))
    assert first is not None and first.outcome == "fired"
    assert schedules.fire(trigger.pk, slot + timedelta(seconds=1)) is None
    assert schedules.fire(trigger.pk, slot + timedelta(seconds=40)) is None
    run = Run.objects.get()
    assert (run.trigger_kind, run.trigger_ref) == ("schedule", trigger.pk)
    trigger.refresh_from_db()
    assert trigger.trigger_count == 1
    assert trigger.last_run_at == slot


def test_overlap_skip_skips_while_the_previous_run_is_going(org):
    _, trigger = make(org, cron="*/5 * * * *", tz="UTC", overlap="skip")
    base = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
    schedules.fire(trigger.pk, base)
    Run.objects.update(status="running")
    second = schedules.fire(trigger.pk, base + timedelta(minutes=5))
    assert second.outcome == "skipped"
    assert Run.objects.count() == 1


def test_overlap_allow_starts_another_run(org):
    _, trigger = make(org, cron="*/5 * * * *", tz="UTC", overlap="allow")
    base = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
    schedules.fire(trigger.pk, base)
    Run.objects.update(status="running")
    schedules.fire(trigger.pk, base + timedelta(minutes=5))
    assert Run.objects.count() == 2


@pytest.mark.parametrize(("catchup", "runs"), [("none", 0), ("latest", 1)])
def test_after_downtime_catchup_decides_whether_the_missed_slot_fires(org, catchup, runs):
    _, trigger = make(org, cron="0 * * * *", tz="UTC", catchup=catchup)
    firing = schedules.fire(trigger.pk, datetime(2026, 5, 4, 10, 37, tzinfo=UTC))
    assert firing.slot == datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
    assert Run.objects.count() == runs
    assert firing.outcome == ("missed" if runs == 0 else "fired")


@pytest.mark.parametrize(
    ("day", "label"),
    [
        ((2026, 3, 28, 22, 0), "clocks go forward: 02:30 never happens"),
        ((2026, 10, 24, 22, 0), "clocks go back: 02:30 happens twice"),
    ],
)
def test_a_daily_slot_fires_exactly_once_across_a_dst_change(org, day, label):
    _, trigger = make(org, cron="30 2 * * *", tz="Europe/Paris", overlap="allow")
    start = datetime(*day, tzinfo=UTC)
    for now in minutes(start, start + timedelta(hours=8)):
        schedules.fire(trigger.pk, now)
    assert ScheduleFiring.objects.filter(outcome="fired").count() == 1, label
    assert Run.objects.count() == 1


def test_an_hourly_schedule_fires_every_wall_clock_hour_once_when_clocks_go_back(org):
    _, trigger = make(org, cron="0 * * * *", tz="Europe/Paris", overlap="allow")
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # midnight in Paris, summer time
    for now in minutes(start, start + timedelta(hours=6)):
        schedules.fire(trigger.pk, now)
    keys = list(ScheduleFiring.objects.order_by("slot").values_list("slot_key", flat=True))
    assert keys == [f"2026-10-25T{hour:02d}:00" for hour in range(0, 6)]


def test_the_reaper_fires_a_slot_that_beat_missed(org):
    from runs.services import timers

    _, trigger = make(org, cron="* * * * *", tz="UTC")
    Trigger.objects.filter(pk=trigger.pk).update(
        next_run_at=datetime(2020, 1, 1, tzinfo=UTC), catchup="latest"
    )
    timers.reap()
    assert Run.objects.filter(trigger_kind="schedule").count() == 1


@pytest.mark.parametrize(
    "start", [datetime(2026, 3, 27, 22, 0, tzinfo=UTC), datetime(2026, 10, 23, 22, 0, tzinfo=UTC)]
)
def test_two_beat_schedulers_on_a_controlled_clock_fire_each_daily_slot_once(org, start):
    """celery-beat's own entries decide when to send, each tick the task may arrive twice, and
    the reaper runs too: across three days around a DST change, one run per day."""
    from django_celery_beat.schedulers import ModelEntry

    from config.celery import app
    from runs.services import timers

    _, trigger = make(org, cron="30 2 * * *", tz="Europe/Paris", overlap="allow")
    clock = [start]
    beats = []
    for _ in range(2):
        entry = ModelEntry(PeriodicTask.objects.get(name=f"trigger-{trigger.pk}"), app=app)
        entry.schedule.nowfun = lambda tz=entry.schedule.tz: clock[0].astimezone(tz)
        beats.append([entry, start])
    sent = 0
    for now in minutes(start, start + timedelta(days=3)):
        clock[0] = now
        for beat in beats:
            entry, last_run_at = beat
            due, _ = entry.schedule.is_due(last_run_at)
            if due:
                sent += 1
                beat[1] = now
                args = json.loads(entry.model.args)
                schedules.fire(args[0], now)
                schedules.fire(args[0], now)  # redelivered
        if now.minute % 15 == 0:
            with patch("django.utils.timezone.now", return_value=now):
                timers.reap()
    assert sent >= 4
    assert list(
        ScheduleFiring.objects.filter(outcome="fired")
        .order_by("slot")
        .values_list("slot_key", flat=True)
    ) == [(start + timedelta(days=day, hours=6)).strftime("%Y-%m-%dT02:30") for day in range(3)]
    assert Run.objects.count() == 3


def test_day_of_month_and_day_of_week_given_together_must_both_match(org, editor):
    # Celery beat reads them so (classic cron fires on either): the first Monday of each month.
    _, trigger = make(org, cron="0 9 1-7 * 1", tz="UTC")
    slots, at = [], datetime(2026, 11, 30, tzinfo=UTC)
    for _ in range(3):
        at = next_slot(trigger.cron_expression, "UTC", at)
        slots.append(at)
    firsts = [(2026, 12, 7), (2027, 1, 4), (2027, 2, 1)]
    assert slots == [datetime(*day, 9, tzinfo=UTC) for day in firsts]
    described = editor.get(f"/api/v1/triggers/{trigger.pk}").json()["cron_description"]
    assert "only on Monday" in described
