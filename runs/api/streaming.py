"""Sync runs and Server-Sent Events, as async views: a client waiting for a run holds no thread.

Authentication, validation and the state change are the ordinary DRF views, called through
sync_to_async; only the waiting is async. The event table is the truth: a stream reads the
events after the last seq it sent, so a reconnect with Last-Event-ID misses nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.negotiation import EventStreamNegotiation
from core.domain_errors import InvalidRequest
from core.errors import error_body
from core.params import integer_param, refuse_unknown_params
from orchestrator.models import Orchestration
from runs.api.views import (
    EVENTS_PARAMS,
    OrchestrationRunViewSet,
    RunViewSet,
    fire_from_request,
    orchestration_for,
    run_detail,
)
from runs.engine import RUN_TERMINAL, RunStatus
from runs.models import Run, RunEvent
from runs.services.deltas import FinishedTurns
from runs.services.events import RunFeed, wire

POLL_MIN_S, POLL_MAX_S = 0.02, 0.25
KEEPALIVE_S = 15.0
WAITING = {RunStatus.QUEUED, RunStatus.RUNNING}

collection = OrchestrationRunViewSet.as_view({"get": "list", "post": "create"})
# The DRF views behind the streams: they negotiate for an event stream (EventStreamNegotiation).
_run_detail = RunViewSet.as_view(
    {"get": "retrieve"}, content_negotiation_class=EventStreamNegotiation
)


async def _render(response) -> HttpResponse:
    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
        await sync_to_async(response.render)()
    return response


def _status(run_id) -> str:
    return Run.objects.values_list("status", flat=True).get(pk=run_id)


def _events_after(run_id, seq: int) -> list[RunEvent]:
    return list(RunEvent.objects.filter(run_id=run_id, seq__gt=seq).order_by("seq")[:500])


def _detail(run_id) -> dict:
    return run_detail(Run.objects.select_related("orchestration").get(pk=run_id))


async def wait_for(run_id, timeout: float) -> str:
    """Poll the run's status until it ends or pauses (backing off to a few checks a second)."""
    deadline = time.monotonic() + timeout
    pause = POLL_MIN_S
    while True:
        current = await sync_to_async(_status)(run_id)
        if current not in WAITING or time.monotonic() >= deadline:
            return current
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, POLL_MAX_S)


def _frame(event: RunEvent) -> str:
    """The event as the events list and the websocket give it: its own fields stay under `data`
    (a step's `type` is its node type, which must not hide the event's)."""
    data = wire(event.seq, event.type, event.ts, event.step_id, event.data)
    return f"id: {event.seq}\nevent: {event.type}\ndata: {json.dumps(data, default=str)}\n\n"


def _delta_frame(delta: dict) -> str:
    """A model's answer as it streams: no `id:` line, so a reconnect's Last-Event-ID stays the
    last stored event's seq."""
    return f"event: agent_delta\ndata: {json.dumps(delta)}\n\n"


async def event_stream(run_id, after: int, *, stop_on_pause: bool) -> AsyncIterator[str]:
    """The table is read after `after`, then again on every wake-up from the run's group (or,
    without a cross-process channel layer, every POLL_MIN_S to POLL_MAX_S); agent_delta frames
    from the group are passed on as they come, but never after their turn's stored event."""
    last, pause, quiet_since = after, POLL_MIN_S, time.monotonic()
    finished = FinishedTurns()
    feed = await RunFeed.open(run_id)
    try:
        yield ": stream open\n\n"
        while True:
            current = await sync_to_async(_status)(run_id)
            batch = await sync_to_async(_events_after)(run_id, last)
            for event in batch:
                last = event.seq
                finished.note(event.type, event.step_id, event.data)
                yield _frame(event)
            if batch:
                pause, quiet_since = POLL_MIN_S, time.monotonic()
                continue
            if current in RUN_TERMINAL or (stop_on_pause and current == RunStatus.PAUSED):
                end = {"run_id": str(run_id), "status": current}
                yield f"event: done\ndata: {json.dumps(end)}\n\n"
                return
            if time.monotonic() - quiet_since > KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"
            if feed is None:
                await asyncio.sleep(pause)
            else:
                deadline = time.monotonic() + pause
                while (message := await feed.next(deadline - time.monotonic())) is not None:
                    if message.get("type") != "run.deltas":
                        break  # a wake-up: read the table now
                    for delta in message.get("deltas", ()):
                        if finished.fresh(delta):
                            quiet_since = time.monotonic()
                            yield _delta_frame(delta)
            pause = min(pause * 1.5, POLL_MAX_S)
    finally:
        if feed is not None:
            await feed.close()


def sse_response(stream: AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@csrf_exempt
async def runs_collection(request, orchestration_pk: str):
    """GET lists runs; POST fires one, and with "async": false waits for it to end or pause."""
    response = await sync_to_async(collection)(request, orchestration_pk=orchestration_pk)
    run_id = getattr(response, "wait_for_run", None)
    if request.method != "POST" or run_id is None:
        return await _render(response)
    await wait_for(run_id, settings.SYNC_RUN_TIMEOUT_S)
    detail = await sync_to_async(_detail)(run_id)
    code = status.HTTP_202_ACCEPTED if detail["status"] in WAITING else status.HTTP_200_OK
    return await _render(_json(detail, code))


class _FireForStream(APIView):
    """The fire behind `fire_stream`. `get_object` lets the role check answer 404 for another
    organization's orchestration before it answers 403 to a viewer."""

    content_negotiation_class = EventStreamNegotiation

    def get_object(self) -> Orchestration:
        return orchestration_for(self.request, self.kwargs["orchestration_pk"])

    def post(self, request, orchestration_pk: str):
        run, _, _ = fire_from_request(request, self.get_object())
        return Response({"run_id": str(run.pk)}, status=status.HTTP_202_ACCEPTED)


_fire_for_stream = _FireForStream.as_view()


@csrf_exempt
async def fire_stream(request, orchestration_pk: str):
    """Fire, then stream the run's events until it ends or pauses, then `event: done`."""
    response = await sync_to_async(_fire_for_stream)(request, orchestration_pk=orchestration_pk)
    if response.status_code != status.HTTP_202_ACCEPTED:
        return await _render(response)
    return sse_response(event_stream(response.data["run_id"], 0, stop_on_pause=True))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@csrf_exempt
async def events_stream(request, pk: str):
    """The run's events from Last-Event-ID (or ?after=) on, live until the run ends."""
    response = await sync_to_async(_run_detail)(request, pk=pk)
    if response.status_code != status.HTTP_200_OK:
        return await _render(response)
    name, raw = (
        ("Last-Event-ID", request.headers["Last-Event-ID"])
        if request.headers.get("Last-Event-ID")
        else ("after", request.GET.get("after") or "0")
    )
    try:
        refuse_unknown_params(request.GET, EVENTS_PARAMS)
        after = integer_param(raw, name)
    except InvalidRequest as exc:
        return await _render(
            _json(error_body("validation_error", str(exc.detail), exc.fields), 400)
        )
    return sse_response(event_stream(pk, after, stop_on_pause=False))


def _json(data: dict, code: int) -> HttpResponse:
    return HttpResponse(json.dumps(data, default=str), status=code, content_type="application/json")
