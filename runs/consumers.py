"""The live trace of one run over a websocket (`/ws/runs/<id>/`).

The event table is the truth: a wake-up from the channel layer (or, without a cross-process
layer, a poll) makes the consumer read the events after the last seq it sent. A client that
reconnects with `?after=<seq>` misses nothing and sees nothing twice.

Frames: `{"events": [...], "status"}` for stored events, `{"pong": seq}` for a ping, and
`{"agent_delta": {"step_id", "turn", "text"}}` for a model's answer as it streams (live only: not
stored, no seq; the `agent_turn` event that follows holds the whole answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import InMemoryChannelLayer
from rest_framework.exceptions import AuthenticationFailed

from core.auth import tenant_for_token
from core.params import parse_integer
from core.tenancy import membership_for
from core.websockets import websocket_token
from runs.models import Run, RunEvent
from runs.services.deltas import FinishedTurns
from runs.services.events import group_name, wire

BATCH = 500
# Polling only backs up wake-ups; embedded (in-memory layer) it is the only way to learn of a
# worker's progress, so it runs faster there.
POLL_EMBEDDED_S = 0.25
POLL_BACKUP_S = 2.0
CLOSE_FORBIDDEN = 4403


def _organization_id(token: str, user, params: dict) -> uuid.UUID | None:
    """A given token decides alone (a bad one is refused, never replaced by the session)."""
    if token:
        try:
            _, tenant = tenant_for_token(token)
        except AuthenticationFailed:
            return None
        return tenant.organization.pk
    if user is None or not user.is_authenticated:
        return None
    membership = membership_for(user, (params.get("tenant") or [""])[0] or None)
    return membership.organization_id if membership else None


@database_sync_to_async
def _visible_run(run_id: str, token: str, user, params: dict) -> bool:
    try:
        run_uuid = uuid.UUID(run_id)
    except ValueError:
        return False
    organization_id = _organization_id(token, user, params)
    return (
        organization_id is not None
        and Run.objects.filter(pk=run_uuid, organization_id=organization_id).exists()
    )


@database_sync_to_async
def _events_after(run_id: str, seq: int) -> tuple[list[dict], str]:
    """The events after `seq`, and the run's status read with them in the same query (a wake-up
    costs one query, not two). The status is only sent with events."""
    rows = list(
        RunEvent.objects.filter(run_id=run_id, seq__gt=seq)
        .order_by("seq")
        .values_list("seq", "type", "ts", "step_id", "data", "run__status")[:BATCH]
    )
    events = [wire(*row[:5]) for row in rows]
    return events, rows[-1][5] if rows else ""


# Reads in flight, by (run, seq read after, seq of the wake-up). One wake-up reaches every viewer
# of a run in this process at once, and they would each run the same query one after the other
# (database_sync_to_async runs them on one thread): viewers woken by the same message share one
# read, which started after that message arrived, so it sees the event that sent it.
_shared_reads: dict[tuple[str, int, int], asyncio.Future] = {}


async def _events_after_shared(run_id: str, seq: int, woken_for: int) -> tuple[list[dict], str]:
    key, loop = (run_id, seq, woken_for), asyncio.get_running_loop()
    read = _shared_reads.get(key)
    if read is None or read.get_loop() is not loop:
        read = _shared_reads[key] = asyncio.ensure_future(_events_after(run_id, seq))

        def forget(done: asyncio.Future) -> None:
            if _shared_reads.get(key) is done:
                del _shared_reads[key]

        read.add_done_callback(forget)
    # Shielded: a viewer that disconnects mid-read must not cancel the read of the others.
    return await asyncio.shield(read)


class RunTraceConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.run_id = self.scope["url_route"]["kwargs"]["run_id"]
        params = parse_qs(self.scope.get("query_string", b"").decode())
        token = websocket_token(self.scope)
        if not await _visible_run(self.run_id, token, self.scope.get("user"), params):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        # A socket cannot answer 400: an `after` that is not a seq replays from the start.
        self.last_seq = parse_integer((params.get("after") or ["0"])[0]) or 0
        self.lock = asyncio.Lock()
        self.finished = FinishedTurns()
        self.group = group_name(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_new_events()
        interval = (
            POLL_EMBEDDED_S
            if isinstance(self.channel_layer, InMemoryChannelLayer)
            else POLL_BACKUP_S
        )
        self.poller = asyncio.ensure_future(self.poll(interval))

    async def disconnect(self, code: int) -> None:
        poller = getattr(self, "poller", None)
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.send_new_events()

    async def run_events(self, message: dict) -> None:
        """The wake-up sent by runs.services.events after a commit. When it carries its events
        and they follow on from what this viewer has, they go out as they came; otherwise (a
        gap: another process's wake-up not here yet, or events too large to carry) the viewer
        reads the table."""
        seq = message.get("seq", 0)
        if seq <= self.last_seq:
            return
        async with self.lock:
            if message.get("frame") and message.get("first") == self.last_seq + 1:
                frame = message["frame"]
                if '"agent_turn"' in frame or '"step_start"' in frame:
                    self.finished.note_all(json.loads(frame)["events"])
                await self.send(text_data=frame)
                self.last_seq = seq
                return
        await self.send_new_events(woken_for=seq)

    async def send_new_events(self, *, woken_for: int | None = None) -> None:
        async with self.lock:
            while True:
                if woken_for is None:
                    events, status = await _events_after(self.run_id, self.last_seq)
                else:
                    events, status = await _events_after_shared(
                        self.run_id, self.last_seq, woken_for
                    )
                if events:
                    self.last_seq = events[-1]["seq"]
                    self.finished.note_all(events)
                    await self.send_json({"events": events, "status": status})
                if len(events) < BATCH:
                    break

    async def run_deltas(self, message: dict) -> None:
        """A model's answer as it streams (runs.services.deltas), sent on as it came; text of a
        turn this viewer already has whole is dropped."""
        async with self.lock:
            for delta in message.get("deltas", ()):
                if self.finished.fresh(delta):
                    await self.send_json({"agent_delta": delta})

    async def receive_json(self, content, **kwargs) -> None:
        """Clients only listen; a ping gets the current position back."""
        await self.send_json({"pong": self.last_seq})
