"""Appending to a run's event log inside the transaction that changed the run, and waking up
whoever is watching once it commits."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

from runs.models import Run, RunEvent

logger = logging.getLogger(__name__)


def group_name(run_id) -> str:
    return f"run-{run_id}"


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
        run_id, seq = self.run.pk, self.run.last_seq
        transaction.on_commit(lambda: notify(run_id, seq))
        self.pending = []


class Notifier:
    """Wake-ups for live viewers, sent from a background event loop and coalesced per run.

    A worker must not wait on the channel layer after every commit (async_to_sync costs a few
    milliseconds a call), and a viewer needs one wake-up per burst, not one per transition: so
    `notify` only records the newest seq of a run, and a loop thread sends what accumulated,
    at once if it sent nothing in the last COALESCE_S, else when that interval is over. A burst
    costs one wake-up per COALESCE_S; a lone event is not held back (waiting out a fixed
    interval after every commit put ~50 ms on every live event). The event table stays the
    truth; a lost wake-up only delays a viewer until its next poll.
    """

    COALESCE_S = 0.01

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latest: dict[str, int] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.scheduled = False
        self.quiet_until = 0.0  # time.monotonic() before which a send waits

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            threading.Thread(target=self.loop.run_forever, name="run-notifier", daemon=True).start()
        return self.loop

    def notify(self, run_id, seq: int) -> None:
        layer = get_channel_layer()
        if layer is None or isinstance(layer, InMemoryChannelLayer):
            return  # no other process could hear it: viewers poll the table instead
        with self.lock:
            key = str(run_id)
            self.latest[key] = max(seq, self.latest.get(key, 0))
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
            batch, self.latest, self.scheduled = self.latest, {}, False
            self.quiet_until = time.monotonic() + self.COALESCE_S
        for run_id, seq in batch.items():
            try:
                await layer.group_send(
                    group_name(run_id), {"type": "run.events", "run_id": run_id, "seq": seq}
                )
            except Exception:  # a missed wake-up only delays a viewer until its next poll
                logger.warning("could not notify watchers of run %s", run_id, exc_info=True)


_notifier = Notifier()


def notify(run_id, seq: int) -> None:
    _notifier.notify(run_id, seq)


def append_now(run_id, kind: str, step_id: str = "", /, **data: Any) -> None:
    """One event from outside a state change (an agent's turn while the step runs)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().only("id", "last_seq").get(pk=run_id)
        log = EventLog(run)
        log.add(kind, step_id, **data)
        log.flush()
