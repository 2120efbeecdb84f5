"""Answering a run's pending gate, then waiting for the run (`resume`) or streaming its events
(`resume_stream`), as async views on the ones in runs/api/streaming.py."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status

from approvals.api.views import RunAnswerViewSet
from core.api.negotiation import EventStreamNegotiation
from runs.api.streaming import (
    WAITING,
    _detail,
    _is_uuid,
    _json,
    _render,
    event_stream,
    sse_response,
    wait_for,
)
from runs.models import Run


def _resume_view(*, stream: bool = False):
    if stream:
        return RunAnswerViewSet.as_view(
            {"post": "resume"}, content_negotiation_class=EventStreamNegotiation
        )
    return RunAnswerViewSet.as_view({"post": "resume"})


@csrf_exempt
async def resume(request, pk: str):
    """Answer the pending gate, then wait like a sync run: 200 with the run detail."""
    response = await sync_to_async(_resume_view())(request, pk=pk)
    run_id = getattr(response, "wait_for_run", None)
    if response.status_code != status.HTTP_202_ACCEPTED:
        return await _render(response)
    if run_id is None:
        return await _render(response)
    await wait_for(run_id, settings.SYNC_RUN_TIMEOUT_S)
    detail = await sync_to_async(_detail)(run_id)
    code = status.HTTP_202_ACCEPTED if detail["status"] in WAITING else status.HTTP_200_OK
    return await _render(_json(detail, code))


@csrf_exempt
async def resume_stream(request, pk: str):
    """Answer the pending gate, then stream the events that follow until the run ends or
    pauses again."""
    last = (
        await sync_to_async(
            lambda: Run.objects.filter(pk=pk).values_list("last_seq", flat=True).first() or 0
        )()
        if _is_uuid(pk)
        else 0
    )
    response = await sync_to_async(_resume_view(stream=True))(request, pk=pk)
    if response.status_code != status.HTTP_202_ACCEPTED:
        return await _render(response)
    return sse_response(event_stream(pk, last, stop_on_pause=True))
