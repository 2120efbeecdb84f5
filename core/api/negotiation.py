"""Content negotiation of the endpoints that answer with Server-Sent Events.

Behind each stream is an ordinary DRF view that authenticates, checks the role and changes
state; the async view around it then sends `text/event-stream`. DRF's default negotiation only
knows the JSON renderer, so it answered 406 to exactly the clients SSE is for: browsers'
`EventSource`, httpx-sse and sseclient all send `Accept: text/event-stream`. Here the question
asked is the one that matters, whether the client takes an event stream; the DRF view's own
answer (an error, or the hand-over to the stream) is JSON, as every API error is.
"""

from __future__ import annotations

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

EVENT_STREAM = "text/event-stream"
# The stream is always UTF-8 (the SSE format allows nothing else): a client that asks for it by
# that charset takes it too. Django matches parameter values as written, hence both spellings.
_AS_SENT = (EVENT_STREAM, f"{EVENT_STREAM}; charset=utf-8", f"{EVENT_STREAM}; charset=UTF-8")


def accepts_event_stream(request: Request) -> bool:
    """Whether the Accept header admits an event stream: none (or an empty one), `*/*`,
    `text/*` and `text/event-stream` (also with `charset=utf-8`) do; `;q=0` refuses it. Django's
    own Accept parsing decides (quality values, wildcards and parameters)."""
    django_request = getattr(request, "_request", request)
    if not django_request.headers.get("Accept", "").strip():
        return True
    return any(django_request.accepts(media_type) for media_type in _AS_SENT)


class EventStreamNegotiation(DefaultContentNegotiation):
    """For the DRF views behind a stream: 406 (in the API's error format) to a client that does
    not take `text/event-stream`, JSON for the view's own answer otherwise."""

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        if not accepts_event_stream(request):
            raise NotAcceptable(
                f"This endpoint answers {EVENT_STREAM}: send Accept: {EVENT_STREAM} "
                "(or */*, or no Accept)."
            )
        renderer = renderers[0]
        return renderer, renderer.media_type
