"""Two beat processes on a controlled clock, each with celery-beat's own schedule entries,
delivering some tasks twice, and the reaper behind them: every schedule slot fires once and
starts one run. Across the 2026 DST changes of 20 time zones, daily 02:30 and hourly schedules
follow the written policy (orchestrator/services/schedules.py): a wall time that happens twice
fires once, the first time; one that falls in a gap fires shifted by the gap; none is skipped."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from unittest.mock import patch
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from django.db import connection
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import ModelEntry

from config.celery import app
from orchestrator.models import ScheduleFiring, Trigger
from orchestrator.services import schedules
from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run
from runs.services import firing, timers
from tests.fault.chaos import CapturedBroker, report, scale

TRIGGERS = 50
TICKS = scale(30, 240)
ZONES = [
    "Europe/Paris",
    "Europe/London",
    "Europe/Dublin",  # "summer time" is the standard: negative DST in the tz database
    "Europe/Chisinau",
    "Atlantic/Azores",  # changes at midnight
    "America/New_York",
    "America/St_Johns",  # half-hour offset
    "America/Havana",  # changes at midnight: 00:00-01:00 happens twice
    "America/Santiago",  # changes at midnight (24:00)
    "America/Nuuk",  # changes at 22:00 and 23:00 local
    "Australia/Sydney",
    "Australia/Adelaide",  # half-hour offset
    "Australia/Lord_Howe",  # a 30-minute change
    "Pacific/Auckland",
    "Pacific/Chatham",  # +12:45 / +13:45, changes at 02:45 and 03:45
    "Asia/Tehran",  # no DST since 2022: a control
    "Asia/Jerusalem",
    "Asia/Beirut",  # changes at midnight
    "Africa/Cairo",  # changes at midnight
    "Antarctica/Troll",  # a two-hour change
]
SCHEDULES = {"daily 02:30": ("30 2 * * *", 26), "hourly": ("0 * * * *", 3)}  # cron, +/- hours
LATE_REAPER_S = 35  # the reaper fires a slot beat missed once it is 30 s old, every 5 s


def make_trigger(org, name: str, cron: str, zone: str) -> Trigger:
    orchestration = create_orchestration(
        org,
        {
            "name": name,
            "status": "active",
            "definition": {"nodes": [{"id": "t", "type": "transform", "config": {"output": "x"}}]},
            "triggers": [
                {"kind": "schedule", "cron_expression": cron, "timezone": zone, "overlap": "allow"}
            ],
        },
    )
    return orchestration.triggers.get()


class Beat:
    """One beat process: celery-beat's entry for each trigger, each with its last run time."""

    def __init__(self, triggers: list[Trigger], clock: list[datetime], since: datetime) -> None:
        self.entries = []
        for trigger in triggers:
            entry = ModelEntry(PeriodicTask.objects.get(name=schedules.task_name(trigger)), app=app)
            entry.schedule.nowfun = lambda tz=entry.schedule.tz: clock[0].astimezone(tz)
            self.entries.append([entry, since])

    def tick(self, now: datetime, rng: random.Random) -> tuple[int, float]:
        """Send what is due (sometimes twice: a redelivery); return (sent, seconds to next)."""
        sent, wait = 0, 3600.0
        for item in rng.sample(self.entries, len(self.entries)):
            entry, last_run_at = item
            due, next_in = entry.schedule.is_due(last_run_at)
            if due:
                item[1] = now
                (trigger_id,) = json.loads(entry.model.args)
                for _ in range(2 if rng.random() < 0.1 else 1):
                    firing.fire(trigger_id, now)
                    sent += 1
            wait = min(wait, next_in)
        return sent, wait


@pytest.mark.django_db(transaction=True)
def test_two_beats_fire_each_every_minute_slot_once(org):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    start = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
    zones = ["UTC", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham", "Europe/Paris"]
    triggers = [
        make_trigger(org, f"Every minute {n}", "* * * * *", zones[n % len(zones)])
        for n in range(TRIGGERS)
    ]
    Trigger.objects.update(next_run_at=start)
    clock = [start]
    beats = [Beat(triggers, clock, start - timedelta(seconds=2)) for _ in range(2)]
    broker = CapturedBroker()
    sent = Counter()
    errors: list[BaseException] = []

    def run_beat(index: int, now: datetime, barrier: threading.Barrier) -> None:
        try:
            barrier.wait()
            sent[index] += beats[index].tick(now, random.Random(f"{seed}-{index}-{now}"))[0]
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    # On PostgreSQL the two beats race in threads. SQLite takes one writer at a time and makes
    # the other sleep in steps of up to 100 ms: there the beats take turns, tick by tick.
    concurrent = connection.vendor == "postgresql"
    with broker.patch():
        for tick in range(TICKS):
            now = start + timedelta(minutes=tick, seconds=2)
            clock[0] = now
            if concurrent:
                barrier = threading.Barrier(2)
                threads = [
                    threading.Thread(target=run_beat, args=(i, now, barrier)) for i in range(2)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            else:
                for index in rng.sample([0, 1], 2):
                    sent[index] += beats[index].tick(now, rng)[0]
            assert not errors, errors
            if tick % 5 == 4:
                with patch("django.utils.timezone.now", return_value=now + timedelta(seconds=40)):
                    timers.reap()

    fired = ScheduleFiring.objects.filter(outcome="fired")
    per_slot = Counter(fired.values_list("trigger_id", "slot_key"))
    runs = Run.objects.filter(trigger_kind="schedule")
    report(
        "two beats, every-minute schedules",
        seed=seed,
        beats="threads" if concurrent else "taking turns",
        triggers=TRIGGERS,
        ticks=TICKS,
        tasks_sent=sum(sent.values()),
        slots_fired=len(per_slot),
        runs=runs.count(),
        other_outcomes=dict(
            Counter(
                ScheduleFiring.objects.exclude(outcome="fired").values_list("outcome", flat=True)
            )
        ),
    )
    expected = {
        (
            trigger.pk,
            (start + timedelta(minutes=m))
            .astimezone(ZoneInfo(trigger.timezone))
            .strftime("%Y-%m-%dT%H:%M"),
        )
        for trigger in triggers
        for m in range(TICKS)
    }
    assert set(per_slot) == expected
    assert set(per_slot.values()) == {1}
    assert not ScheduleFiring.objects.exclude(outcome="fired").exists()
    assert runs.count() == TRIGGERS * TICKS
    assert set(fired.values_list("run_id", flat=True)) == set(runs.values_list("pk", flat=True))
    assert all(m["countdown"] is None for m in broker.sent if "countdown" in m)


# --- DST --------------------------------------------------------------------------------------


def transitions(zone: ZoneInfo, year: int = 2026) -> list[datetime]:
    """The instants in `year` at which the zone's UTC offset changes (found every 15 minutes)."""
    found, at = [], datetime(year, 1, 1, tzinfo=UTC)
    before = at.astimezone(zone).utcoffset()
    while at.year == year:
        at += timedelta(minutes=15)
        offset = at.astimezone(zone).utcoffset()
        if offset != before:
            found.append(at)
            before = offset
    return found


def expected_instant(wall: datetime, zone: ZoneInfo, offsets: set[timedelta]) -> datetime:
    """Where the policy puts a wall-clock slot, found by trying every offset the zone uses:
    the first instant that reads `wall`; or, when none does (a gap), the one that reads `wall`
    shifted forward by the gap."""
    reads = {offset: (wall - offset).replace(tzinfo=UTC) for offset in offsets}
    exact = [t for t in reads.values() if t.astimezone(zone).replace(tzinfo=None) == wall]
    if exact:
        return min(exact)
    shifted = [t for t in reads.values() if t.astimezone(zone).replace(tzinfo=None) > wall]
    return min(shifted)


def expected_slots(cron: str, zone: ZoneInfo, start: datetime, end: datetime) -> dict:
    offsets = {
        (start + timedelta(minutes=15 * n)).astimezone(zone).utcoffset()
        for n in range(int((end - start) / timedelta(minutes=15)) + 1)
    }
    since = start.astimezone(zone).replace(tzinfo=None) - timedelta(days=1)
    slots = {}
    for wall in croniter(cron, since, day_or=False).all_next(datetime):
        if wall > end.astimezone(zone).replace(tzinfo=None) + timedelta(days=1):
            break
        instant = expected_instant(wall, zone, offsets)
        if start < instant <= end - timedelta(minutes=5):
            key = wall.strftime("%Y-%m-%dT%H:%M")
            slots.setdefault(key, instant)  # a wall time twice: its first instant
    return slots


def simulate(trigger: Trigger, start: datetime, end: datetime, rng: random.Random) -> int:
    """Two beats wake when an entry says it is next due (at most an hour apart), the reaper
    when a slot has gone unfired for 30 s; both beats sometimes deliver twice."""
    Trigger.objects.filter(pk=trigger.pk).update(
        is_active=True,
        next_run_at=schedules.next_slot(trigger.cron_expression, trigger.timezone, start),
    )
    clock = [start]
    beats = [Beat([trigger], clock, start) for _ in range(2)]
    sent, now = 0, start
    while now <= end:
        clock[0] = now
        waits = []
        for beat in beats:
            count, wait = beat.tick(now, rng)
            sent += count
            waits.append(wait)
        next_run_at = Trigger.objects.values_list("next_run_at", flat=True).get(pk=trigger.pk)
        if next_run_at + timedelta(seconds=30) <= now:
            with patch("django.utils.timezone.now", return_value=now):
                timers.reap()
            next_run_at = Trigger.objects.values_list("next_run_at", flat=True).get(pk=trigger.pk)
        reaper_at = next_run_at + timedelta(seconds=LATE_REAPER_S)
        step = min(max(min(waits), 1.0), 3600.0)
        now = min(now + timedelta(seconds=step), max(reaper_at, now + timedelta(seconds=1)))
    Trigger.objects.filter(pk=trigger.pk).update(is_active=False)
    return sent


@pytest.mark.django_db
@pytest.mark.parametrize("zone_name", ZONES)
def test_schedules_across_dst_changes_follow_the_policy(org, zone_name):
    zone = ZoneInfo(zone_name)
    changes = transitions(zone) or [datetime(2026, 3, 21, 0, 0, tzinfo=UTC)]  # Tehran: none
    rng = random.Random(zone_name)
    figures = Counter()
    for kind, (cron, hours) in SCHEDULES.items():
        trigger = make_trigger(org, f"{kind} {zone_name}", cron, zone_name)
        Trigger.objects.filter(pk=trigger.pk).update(is_active=False)
        trigger.refresh_from_db()
        for change in changes:
            start = change.replace(minute=7) - timedelta(hours=hours)
            end = change.replace(minute=7) + timedelta(hours=hours)
            before = set(
                ScheduleFiring.objects.filter(trigger=trigger).values_list("pk", flat=True)
            )
            figures["tasks sent"] += simulate(trigger, start, end, rng)
            firings = ScheduleFiring.objects.filter(trigger=trigger).exclude(pk__in=before)
            expected = expected_slots(cron, zone, start, end)
            got = {f.slot_key: f.slot for f in firings.filter(outcome="fired")}
            where = f"{kind} around {change:%Y-%m-%d %H:%M}Z"
            assert not firings.exclude(outcome="fired").exists(), (where, list(firings.values()))
            assert sorted(got) == sorted(expected), where
            assert got == expected, where
            assert firings.count() == len(expected), where
            figures["slots"] += len(expected)
            for key, instant in expected.items():
                wall = datetime.fromisoformat(key)
                reads = [
                    (instant + timedelta(minutes=m)).astimezone(zone).replace(tzinfo=None)
                    for m in (0, 30, 60, 120)  # the size of every DST change in these zones
                ]
                if reads[0] != wall:
                    figures["gap_shifted"] += 1
                elif wall in reads[1:]:
                    figures["twice_fired_once"] += 1
        runs = Run.objects.filter(trigger_ref=trigger.pk)
        assert runs.count() == ScheduleFiring.objects.filter(trigger=trigger).count()
    report(
        "DST schedules",
        zone=zone_name,
        changes=[f"{c:%m-%d %H:%M}Z" for c in transitions(zone)],
        **{k.replace(" ", "_"): v for k, v in figures.items()},
    )
