"""Appending to a run's event log inside the transaction that changed the run, and waking up
whoever is watching once it commits."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

from runs.models import Run, RunEvent

logger = logging.getLogger(__name__)


# A wake-up carries its events when they are at most this large (JSON); larger ones only name
# their seq, and the consumers read the events from the table.
WAKEUP_MAX_BYTES = 64 * 1024


def group_name(run_id) -> str:
    return f"run-{run_id}"


def wire(seq: int, kind: str, ts, step_id: str, data: Any) -> dict:
    """An event as clients get it, over the websocket and in the API."""
    return {
        "seq": seq,
        "type": kind,
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "step_id": step_id,
        "data": data,
    }


class EventLog:
    """Collects a transaction's events; `flush` writes them with gap-free seqs.

    The caller holds the run's row lock, so `last_seq` cannot move under it.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.pending: list[RunEvent] = []

    def add(self, kind: str, step_id: str = "", /, **data: Any) -> None:
        self.run.last_seq += 1
        self.pending.append(
            RunEvent(
                run_id=self.run.pk, seq=self.run.last_seq, type=kind, step_id=step_id, data=data
            )
        )

    def flush(self, *, save_seq: bool = True) -> None:
        """`save_seq=False` when the caller saves the run row (with last_seq) itself."""
        if not self.pending:
            return
        RunEvent.objects.bulk_create(self.pending)
        if save_seq:
            Run.objects.filter(pk=self.run.pk).update(last_seq=self.run.last_seq)
        run_id, seq, written = self.run.pk, self.run.last_seq, self.pending
        status = "" if "status" in self.run.get_deferred_fields() else self.run.status
        transaction.on_commit(lambda: notify(run_id, seq, written, status))
        self.pending = []


class Batch:
    """Events of one run, seqs `first`..`last` in a row, as the inside of a JSON array."""

    __slots__ = ("first", "items", "last", "status")

    def __init__(self, first: int, last: int, items: str, status: str) -> None:
        self.first, self.last, self.items, self.status = first, last, items, status

    @classmethod
    def of(cls, written: Sequence[RunEvent], status: str) -> Batch:
        """The events a transaction wrote, as one JSON text built once for every viewer."""
        text = json.dumps(
            [wire(e.seq, e.type, e.ts, e.step_id, e.data) for e in written],
            separators=(",", ":"),
        )
        return cls(written[0].seq, written[-1].seq, text[1:-1], status)

    def then(self, later: Batch | None) -> Batch | None:
        """This batch followed by `later`, or None when they do not join up or grow too large
        (a later wake-up then only names its seq)."""
        if later is None or later.first != self.last + 1:
            return None
        if len(self.items) + len(later.items) > WAKEUP_MAX_BYTES:
            return None
        return Batch(
            self.first, later.last, f"{self.items},{later.items}", later.status or self.status
        )

    def frame(self) -> str:
        """What the consumer sends as is: the same shape as a frame it reads from the table."""
        return f'{{"events":[{self.items}],"status":{json.dumps(self.status)}}}'


class Notifier:
    """Wake-ups for live viewers, sent from a background event loop and coalesced per run.

    A worker must not wait on the channel layer after every commit (async_to_sync costs a few
    milliseconds a call), and a viewer needs one wake-up per burst, not one per transition: so
    `notify` only records the newest seq of a run, and a loop thread sends what accumulated,
    at once if it sent nothing in the last COALESCE_S, else when that interval is over. A burst
    costs one wake-up per COALESCE_S; a lone event is not held back (waiting out a fixed
    interval after every commit put ~50 ms on every live event). A wake-up carries the events
    it announces when they join up and are small, so a viewer that has everything before them
    sends them on without a query. The event table stays the truth; a lost wake-up only delays
    a viewer until its next poll.
    """

    COALESCE_S = 0.01

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latest: dict[str, int] = {}
        self.batches: dict[str, Batch | None] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.scheduled = False
        self.quiet_until = 0.0  # time.monotonic() before which a send waits

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            threading.Thread(target=self.loop.run_forever, name="run-notifier", daemon=True).start()
        return self.loop

    def notify(self, run_id, seq: int, written: Sequence[RunEvent] = (), status: str = "") -> None:
        layer = get_channel_layer()
        if layer is None or isinstance(layer, InMemoryChannelLayer):
            return  # no other process could hear it: viewers poll the table instead
        # The committed events ride along with the wake-up, so that a viewer gets them without
        # reading them back; built only here, where someone in another process may listen.
        batch = Batch.of(written, status) if written else None
        with self.lock:
            key = str(run_id)
            self.latest[key] = max(seq, self.latest.get(key, 0))
            if key not in self.batches:
                self.batches[key] = batch
            else:
                held = self.batches[key]
                self.batches[key] = held.then(batch) if held is not None else None
            if self.scheduled:
                return
            self.scheduled = True
            delay = max(0.0, self.quiet_until - time.monotonic())
            loop = self._ensure_loop()
        asyncio.run_coroutine_threadsafe(self._send_after(layer, delay), loop)

    async def _send_after(self, layer, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        with self.lock:
            latest, batches = self.latest, self.batches
            self.latest, self.batches, self.scheduled = {}, {}, False
            self.quiet_until = time.monotonic() + self.COALESCE_S
        for run_id, seq in latest.items():
            message = {"type": "run.events", "run_id": run_id, "seq": seq}
            batch = batches.get(run_id)
            if batch is not None and batch.last == seq:
                message.update(first=batch.first, frame=batch.frame())
            try:
                await layer.group_send(group_name(run_id), message)
            except Exception:  # a missed wake-up only delays a viewer until its next poll
                logger.warning("could not notify watchers of run %s", run_id, exc_info=True)


_notifier = Notifier()


def notify(run_id, seq: int, written: Sequence[RunEvent] = (), status: str = "") -> None:
    _notifier.notify(run_id, seq, written, status)


def append_now(run_id, kind: str, step_id: str = "", /, **data: Any) -> None:
    """One event from outside a state change (an agent's turn while the step runs).

    On PostgreSQL one statement takes the next seq and inserts the event: the UPDATE locks the
    run's row for the insert, as `select_for_update` would, without a transaction of three
    round trips around it (a live event was a third of a short worker step's queries)."""
    if connection.vendor == "postgresql":
        _append_in_one_statement(run_id, kind, step_id, data)
        return
    with transaction.atomic():
        run = Run.objects.select_for_update().only("id", "last_seq").get(pk=run_id)
        log = EventLog(run)
        log.add(kind, step_id, **data)
        log.flush()


APPEND_SQL = """
WITH seq AS (
    UPDATE {run} SET last_seq = last_seq + 1 WHERE id = %s RETURNING id, last_seq
)
INSERT INTO {event} (run_id, seq, type, step_id, data, ts)
SELECT id, last_seq, %s, %s, %s, %s FROM seq
RETURNING seq
"""


def _append_in_one_statement(run_id, kind: str, step_id: str, data: dict) -> None:
    event = RunEvent(run_id=run_id, type=kind, step_id=step_id, data=data, ts=timezone.now())
    field = RunEvent._meta.get_field("data")
    sql = APPEND_SQL.format(
        run=connection.ops.quote_name(Run._meta.db_table),
        event=connection.ops.quote_name(RunEvent._meta.db_table),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [run_id, kind, step_id, field.get_db_prep_save(data, connection), event.ts],
        )
        row = cursor.fetchone()
    if row is None:
        raise Run.DoesNotExist(f"run {run_id} is gone")
    event.seq = row[0]
    transaction.on_commit(lambda: notify(run_id, event.seq, [event]))
