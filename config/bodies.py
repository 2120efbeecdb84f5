"""Request bodies without a Content-Length (`Transfer-Encoding: chunked`), capped and made
readable before Django sees them.

Why the app needs this, for both servers:

- DRF reads `CONTENT_LENGTH` to decide whether there is a body at all; without it every API view
  sees an empty body, so a chunked PATCH changed nothing and a chunked POST failed validation.
- Nothing capped such a body. Django's ASGI handler spools the whole body (to disk past
  FILE_UPLOAD_MAX_MEMORY_SIZE) before any middleware runs, and BodySizeLimitMiddleware can only
  check a declared Content-Length. Under WSGI, Django reads a request without CONTENT_LENGTH as
  empty, so the body was silently dropped.

So both wrappers read the body themselves, counting bytes against `body_limit(path)` (the limit
BodySizeLimitMiddleware applies: the webhook limit on webhooks, API_MAX_BODY_BYTES on the rest of
the API, Django's DATA_UPLOAD_MAX_MEMORY_SIZE plus multipart framing on pages). Past the limit they
answer 413 in the API.md error body at once and read no further; a refused webhook is counted as
`too_large` like one the middleware refuses. Otherwise Django gets the buffered body with a
Content-Length, as if the client had sent one. A body is held in memory at most up to its limit.
Under ASGI a declared Content-Length over the limit is refused the same way before anything is
read (the middleware would only see it after Django had spooled the body); under WSGI the
middleware answers it before Django reads the body.

For pages (forms, the admin) the limit is Django's DATA_UPLOAD_MAX_MEMORY_SIZE plus room for
multipart framing, not the API limit: no form this app serves is larger, and Django itself would
refuse one that is.

What the server itself reads is its business: daphne (Twisted) receives a whole request before
the application sees any of it, so under daphne the wrapper spares Django a second copy and the
app any work, and the proxy's `client_max_body_size` is what bounds the server. gunicorn and
uvicorn hand the body over as it arrives, and stop receiving when the application stops reading.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http import HTTPStatus
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from core.params import parse_integer
from orchestrator.middleware import body_limit, is_webhook_path, too_large_body
from orchestrator.models import WebhookOutcome
from orchestrator.services import webhooks

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

STATUS_413 = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


def _refusal(limit: int) -> bytes:
    return json.dumps(too_large_body(limit)).encode()


def _count_refused_webhook() -> None:
    """Counted like a webhook the middleware refuses; a failure to count must not turn the 413
    into a 500. Runs outside Django's request cycle, so it closes its connection as a request
    would (or keeps it, within CONN_MAX_AGE)."""
    try:
        webhooks.count_request(WebhookOutcome.TOO_LARGE)
    except Exception:
        logger.exception("could not count a refused webhook")
    finally:
        close_old_connections()


class BodyLimitASGI:
    """Wraps Django's ASGI HTTP app: buffers and caps the body, then replays it to Django."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = body_limit(path)
        lengths = [value for name, value in scope["headers"] if name.lower() == b"content-length"]
        declared = parse_integer(lengths[0]) if len(lengths) == 1 else None
        # A declared length over the limit is refused before reading, as the middleware would,
        # but without Django spooling the body first.
        body = bytearray()
        if declared is None or declared <= limit:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # The client left: nobody to answer, as in Django's own read_body.
                body += message.get("body", b"")
                if len(body) > limit or not message.get("more_body", False):
                    break
        if (declared or 0) > limit or len(body) > limit:
            await self._refuse(path, limit, send)
            return
        if not lengths and body:
            headers = [
                (name, value)
                for name, value in scope["headers"]
                if name.lower() != b"transfer-encoding"
            ]
            headers.append((b"content-length", str(len(body)).encode()))
            scope = {**scope, "headers": headers}
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _refuse(self, path: str, limit: int, send: Send) -> None:
        if is_webhook_path(path):
            await sync_to_async(_count_refused_webhook)()
        payload = _refusal(limit)
        await send(
            {
                "type": "http.response.start",
                "status": STATUS_413.value,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    # The rest of the body is never read: the connection cannot carry another
                    # request.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _replay(body: bytes, receive: Receive) -> Receive:
    """Django's first receive() gets the whole body; later ones go to the server, so a view
    streaming a response (SSE) still learns that the client disconnected."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class BodyLimitWSGI:
    """Wraps Django's WSGI app: reads a body sent without Content-Length (the server marks such an
    input as terminated, e.g. gunicorn for a chunked request) up to its limit, then hands it to
    Django with a Content-Length. Bodies with one are left to BodySizeLimitMiddleware, which
    answers before anything reads them."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("CONTENT_LENGTH") or not environ.get("wsgi.input_terminated"):
            return self.app(environ, start_response)
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        limit = body_limit(path)
        body = _read_at_most(environ["wsgi.input"], limit + 1)
        if len(body) > limit:
            if is_webhook_path(path):
                _count_refused_webhook()
            payload = _refusal(limit)
            start_response(
                f"{STATUS_413.value} {STATUS_413.phrase}",
                [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        if body:
            environ = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)


def _read_at_most(stream: Any, size: int) -> bytes:
    """A WSGI input may return less than asked before its end; read until `size` or the end."""
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)
