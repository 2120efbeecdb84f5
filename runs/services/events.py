"""Appending to a run's event log inside the transaction that changed the run, and waking up
whoever is watching once it commits."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
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

    def flush(self) -> None:
        if not self.pending:
            return
        RunEvent.objects.bulk_create(self.pending)
        Run.objects.filter(pk=self.run.pk).update(last_seq=self.run.last_seq)
        run_id, seq = self.run.pk, self.run.last_seq
        transaction.on_commit(lambda: notify(run_id, seq))
        self.pending = []


def notify(run_id, seq: int) -> None:
    """A wake-up, not the data: consumers read the events after their last seq from the table."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            group_name(run_id), {"type": "run.events", "run_id": str(run_id), "seq": seq}
        )
    except Exception:  # a missed wake-up only delays a live view; the event itself is stored
        logger.warning("could not notify watchers of run %s", run_id, exc_info=True)


def append_now(run_id, kind: str, step_id: str = "", /, **data: Any) -> None:
    """One event from outside a state change (an agent's turn while the step runs)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().only("id", "last_seq").get(pk=run_id)
        log = EventLog(run)
        log.add(kind, step_id, **data)
        log.flush()
