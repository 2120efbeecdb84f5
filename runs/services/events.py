"""Appending to a run's event log inside the transaction that changed the run, and waking up
whoever is watching once it commits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

from core.types import Pk
from runs.models import Run, RunEvent

logger = logging.getLogger(__name__)


# A wake-up carries its events when they are at most this large (JSON); larger ones only name
# their seq, and the consumers read the events from the table.
WAKEUP_MAX_BYTES = 64 * 1024


def group_name(run_id: Pk) -> str:
    return f"run-{run_id}"


def wire(seq: int, kind: str, ts: datetime, step_id: str, data: Any) -> dict[str, Any]:
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
        # agent_delta frames by run, in the order they came: sent before the same pass's
        # wake-ups, so a turn's last text reaches a viewer before the stored turn does.
        self.deltas: dict[str, list[dict[str, Any]]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.scheduled = False
        self.quiet_until = 0.0  # time.monotonic() before which a send waits
        self.sending: asyncio.Lock | None = None  # one pass at a time: frames keep their order

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            threading.Thread(target=self.loop.run_forever, name="run-notifier", daemon=True).start()
        return self.loop

    def notify(
        self, run_id: Pk, seq: int, written: Sequence[RunEvent] = (), status: str = ""
    ) -> None:
        layer = _cross_process_layer()
        if layer is None:
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
            self._schedule(layer)

    def delta(self, run_id: Pk, frame: dict[str, Any]) -> None:
        """Queue an agent_delta frame for the run's viewers (never blocks the caller)."""
        layer = _cross_process_layer()
        if layer is None:
            return
        with self.lock:
            self.deltas.setdefault(str(run_id), []).append(frame)
            self._schedule(layer)

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        """Call `callback` on the notifier's loop thread after `delay` seconds."""
        with self.lock:
            loop = self._ensure_loop()
        loop.call_soon_threadsafe(loop.call_later, delay, callback)

    def _schedule(self, layer: BaseChannelLayer) -> None:
        """Start a send pass unless one is due already. Holds the lock."""
        if self.scheduled:
            return
        self.scheduled = True
        delay = max(0.0, self.quiet_until - time.monotonic())
        asyncio.run_coroutine_threadsafe(self._send_after(layer, delay), self._ensure_loop())

    async def _send_after(self, layer: BaseChannelLayer, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        if self.sending is None:
            self.sending = asyncio.Lock()
        async with self.sending:
            with self.lock:
                latest, batches, deltas = self.latest, self.batches, self.deltas
                self.latest, self.batches, self.deltas, self.scheduled = {}, {}, {}, False
                self.quiet_until = time.monotonic() + self.COALESCE_S
            for run_id, frames in deltas.items():
                message = {"type": "run.deltas", "run_id": run_id, "deltas": frames}
                try:
                    await layer.group_send(group_name(run_id), message)
                except Exception:  # live text only: the stored agent_turn holds the answer
                    logger.warning("could not send deltas of run %s", run_id, exc_info=True)
            await self._wake(layer, latest, batches)

    async def _wake(
        self, layer: BaseChannelLayer, latest: dict[str, int], batches: dict[str, Batch | None]
    ) -> None:
        for run_id, seq in latest.items():
            message = {"type": "run.events", "run_id": run_id, "seq": seq}
            batch = batches.get(run_id)
            if batch is not None and batch.last == seq:
                message.update(first=batch.first, frame=batch.frame())
            try:
                await layer.group_send(group_name(run_id), message)
            except Exception:  # a missed wake-up only delays a viewer until its next poll
                logger.warning("could not notify watchers of run %s", run_id, exc_info=True)


def _cross_process_layer() -> BaseChannelLayer | None:
    """The channel layer, when it reaches other processes' viewers; None for the in-memory one
    (the embedded profile), where a worker's messages could never reach the web process."""
    layer = get_channel_layer()
    return None if layer is None or isinstance(layer, InMemoryChannelLayer) else layer


def viewers_reachable() -> bool:
    """Whether live-only frames (agent_delta) can reach anyone from this process."""
    return _cross_process_layer() is not None


class RunFeed:
    """The messages of a run's group (wake-ups and agent_delta frames) for a stream that is not a
    Channels consumer: an SSE response. A reader task moves them into a queue, so that waiting
    with a timeout never cancels a receive (channels_redis forgets what a channel had buffered
    when its receive is cancelled). A stream that stops reading loses deltas past QUEUE, never
    events: those it reads from the table."""

    QUEUE = 1000

    def __init__(self, layer: BaseChannelLayer, group: str, channel: str) -> None:
        self.layer, self.group, self.channel = layer, group, channel
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=self.QUEUE)
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, run_id: Pk) -> RunFeed | None:
        """None where no other process's messages can arrive (the in-memory layer), or when the
        layer cannot be reached: the stream then polls the table, as it would embedded."""
        layer = _cross_process_layer()
        if layer is None:
            return None
        try:
            channel = await layer.new_channel()
            await layer.group_add(group_name(run_id), channel)
        except Exception:
            logger.warning("could not listen to run %s live", run_id, exc_info=True)
            return None
        return cls(layer, group_name(run_id), channel)

    async def _read(self) -> None:
        try:
            while True:
                message = await self.layer.receive(self.channel)
                with contextlib.suppress(asyncio.QueueFull):
                    self.queue.put_nowait(message)
        except asyncio.CancelledError:
            raise
        except Exception:  # the stream goes on polling the table
            logger.warning("stopped reading the live messages of %s", self.group, exc_info=True)

    async def next(self, timeout: float) -> dict[str, Any] | None:
        """The next message, or None after `timeout` seconds without one."""
        with contextlib.suppress(asyncio.QueueEmpty):
            return self.queue.get_nowait()
        try:
            return await asyncio.wait_for(self.queue.get(), max(timeout, 0.001))
        except TimeoutError:
            return None

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader
        with contextlib.suppress(Exception):
            await self.layer.group_discard(self.group, self.channel)


_notifier = Notifier()


def notify(run_id: Pk, seq: int, written: Sequence[RunEvent] = (), status: str = "") -> None:
    _notifier.notify(run_id, seq, written, status)


def publish_delta(run_id: Pk, frame: dict[str, Any]) -> None:
    """An agent_delta frame `{"step_id", "turn", "text"}` for the run's live viewers: sent on the
    run's group, never stored, no seq."""
    _notifier.delta(run_id, frame)


def later(delay: float, callback: Callable[[], None]) -> None:
    _notifier.later(delay, callback)


def append_now(run_id: Pk, kind: str, step_id: str = "", /, **data: Any) -> None:
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


def _append_in_one_statement(run_id: Pk, kind: str, step_id: str, data: dict[str, Any]) -> None:
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
