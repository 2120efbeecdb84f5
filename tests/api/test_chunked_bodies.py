"""Bodies sent with `Transfer-Encoding: chunked` (no Content-Length) against real servers: the API
reads them, and one over the limit is answered 413 without being read to its end.

Each server runs in a subprocess on the test database: daphne (the ASGI server of Procfile `ws`),
gunicorn (the WSGI server of Procfile.production `web`) and uvicorn (ASGI like daphne, but it hands
the body over as it arrives, so it shows that the ASGI wrapper stops reading; daphne receives a
whole request before the application runs). Requests are written on a raw socket, as in
tests/security/test_webhook_matrix.py, since no test client can leave Content-Length out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from rest_framework.test import APIClient

from config.asgi import application
from orchestrator.models import Orchestration, WebhookOutcome, WebhookRequestCount
from orchestrator.services.webhooks import sign
from runs.models import Run
from tests.serving import database_url, free_port, server_process

# Small limits (the settings' minimum is 1024) keep the bodies small; the webhook one differs from
# the API one so that a test can tell which was applied.
API_LIMIT = 4096
WEBHOOK_LIMIT = 2048
# Pages get DATA_UPLOAD_MAX_MEMORY_SIZE (the API limit in settings) plus the multipart allowance.
PAGE_LIMIT = API_LIMIT + 128 * 1024
# Far more than the socket buffers of both ends can hold: a server that stops reading cannot have
# taken it all.
FLOOD_BYTES = 64 * 1024 * 1024

pytestmark = pytest.mark.django_db(transaction=True)


def command(server: str, port: int) -> list[str]:
    host, bind, app = "127.0.0.1", f"127.0.0.1:{port}", "config.asgi:application"
    arguments = {
        "daphne": ["daphne", "-b", host, "-p", str(port), app],
        "gunicorn": ["gunicorn", "config.wsgi:application", "--workers", "1", "--bind", bind],
        "uvicorn": ["uvicorn", app, "--host", host, "--port", str(port), "--lifespan", "off"],
    }[server]
    return [sys.executable, "-m", *arguments]


@dataclass
class Server:
    name: str
    port: int


@pytest.fixture(scope="module", params=["daphne", "gunicorn", "uvicorn"])
def server(request, django_db_setup, tmp_path_factory) -> Iterator[Server]:
    from django.conf import settings

    name = request.param
    port = free_port()
    log = tmp_path_factory.mktemp(name) / "server.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "VAR_DIR": str(settings.VAR_DIR),
        "API_MAX_BODY_BYTES": str(API_LIMIT),
        "WEBHOOK_MAX_BODY_BYTES": str(WEBHOOK_LIMIT),
        "PYTHONUNBUFFERED": "1",
    }
    with server_process(command(name, port), port, env, log):
        yield Server(name, port)


@dataclass
class Answer:
    status: int
    body: bytes
    # Whether every chunk and the last, empty one went out before the server closed.
    sent_all: bool

    def json(self) -> dict:
        return json.loads(self.body)


def pieces(body: bytes, size: int = 97) -> list[bytes]:
    """An odd size, so that no chunk boundary falls on anything the server could rely on."""
    return [body[i : i + size] for i in range(0, len(body), size)]


def send(
    port: int,
    method: str,
    path: str,
    chunks: Iterable[bytes] | None,
    headers: dict[str, str] | None = None,
    *,
    declared: bytes | None = None,
) -> Answer:
    """One request on a raw socket; `chunks`, if given, go out as the chunks of a chunked body,
    with no Content-Length; `declared` is a body sent the usual way, with its Content-Length."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if chunks is not None:
        lines.append("Transfer-Encoding: chunked")
    if declared is not None:
        lines.append(f"Content-Length: {len(declared)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    sent_all = False
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        # Sent from a thread: the server may answer (and close) before it has read everything.
        def write() -> None:
            nonlocal sent_all
            with contextlib.suppress(OSError):
                sock.sendall(head + (declared or b""))
                if chunks is not None:
                    for chunk in chunks:
                        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sock.sendall(b"0\r\n\r\n")
                sent_all = True

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while data := sock.recv(65536):
                received += data
        # Closing our end would stop the writer too: let it finish or fail on its own first.
        writer.join(timeout=60)
    status_line, _, rest = received.partition(b"\r\n")
    if not status_line:
        return Answer(0, b"", sent_all)
    head_out, _, body_out = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head_out.lower():
        body_out = dechunk(body_out)
    return Answer(int(status_line.split()[1]), body_out, sent_all)


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def flood(total: int, size: int = 65536) -> Iterator[bytes]:
    block = b"x" * size
    for _ in range(total // size):
        yield block


def flow(name: str, **fields) -> dict:
    return {
        "name": name,
        "definition": {
            "inputs": [{"name": "text", "type": "string"}],
            "nodes": [{"id": "echo", "type": "transform", "config": {"output": "{{ input }}"}}],
        },
        **fields,
    }


def json_headers(client: APIClient, **extra: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {client.raw_token}",
        "Content-Type": "application/json",
        **extra,
    }


def padded(data: dict, size: int) -> bytes:
    """The JSON of `data` followed by spaces up to exactly `size` bytes (still valid JSON)."""
    raw = json.dumps(data).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def test_a_chunked_post_creates_the_orchestration_it_describes(server, editor, org):
    body = json.dumps(flow("Chunked flow", description="sent in 97-byte chunks")).encode()
    answer = send(server.port, "POST", "/api/v1/orchestrations", pieces(body), json_headers(editor))
    assert answer.status == 201, answer.body
    stored = Orchestration.objects.get(organization=org)
    assert (stored.name, stored.description) == ("Chunked flow", "sent in 97-byte chunks")
    assert answer.json()["id"] == str(stored.pk)


def test_a_chunked_patch_changes_what_it_says_and_nothing_else(server, editor):
    created = editor.post("/api/v1/orchestrations", flow("Before"), format="json").json()
    body = json.dumps({"description": "patched", "tags": ["chunked"]}).encode()
    answer = send(
        server.port,
        "PATCH",
        f"/api/v1/orchestrations/{created['id']}",
        pieces(body),
        json_headers(editor, **{"If-Match": f'"{created["etag"]}"'}),
    )
    assert answer.status == 200, answer.body
    stored = Orchestration.objects.get(pk=created["id"])
    assert (stored.name, stored.description) == ("Before", "patched")
    assert editor.get(f"/api/v1/orchestrations/{stored.pk}").json()["tags"] == ["chunked"]


def test_a_chunked_body_of_exactly_the_limit_is_read_one_byte_more_is_refused(server, editor):
    at_limit = send(
        server.port,
        "POST",
        "/api/v1/orchestrations",
        pieces(padded(flow("At the limit"), API_LIMIT), 1000),
        json_headers(editor),
    )
    over = send(
        server.port,
        "POST",
        "/api/v1/orchestrations",
        pieces(padded(flow("Over the limit"), API_LIMIT + 1), 1000),
        json_headers(editor),
    )
    assert at_limit.status == 201, at_limit.body
    assert over.status == 413, over.body
    assert over.json() == {
        "error": "payload_too_large",
        "detail": f"The request body is larger than {API_LIMIT} bytes.",
    }
    assert list(Orchestration.objects.values_list("name", flat=True)) == ["At the limit"]


def test_a_chunked_flood_is_refused_without_being_read_to_its_end(server, editor):
    # daphne (Twisted) receives a whole request before the application runs, so there only the
    # proxy's body limit bounds what the server takes in: it gets a smaller flood, and only the
    # answer is checked.
    size = FLOOD_BYTES if server.name != "daphne" else 256 * API_LIMIT
    answer = send(server.port, "POST", "/api/v1/orchestrations", flood(size), json_headers(editor))
    assert answer.status == 413
    assert answer.json()["error"] == "payload_too_large"
    assert not Orchestration.objects.exists()
    if server.name != "daphne":
        assert not answer.sent_all


def test_a_chunked_body_to_a_page_is_capped_too_at_the_form_limit(server):
    over = send(server.port, "POST", "/", flood(PAGE_LIMIT + 65536))
    # Over the API limit but within the form one: Django answers it (CSRF, method), not the cap.
    within = send(server.port, "POST", "/", flood(API_LIMIT * 4, 1024))
    assert over.status == 413
    assert over.json()["error"] == "payload_too_large"
    assert within.status not in (0, 413)


def create_hook(client: APIClient, name: str) -> dict:
    created = client.post(
        "/api/v1/orchestrations",
        flow(name, status="active", triggers=[{"kind": "webhook"}]),
        format="json",
    )
    assert created.status_code == 201, created.content
    trigger = created.json()["triggers"][0]
    return {"path": urlsplit(trigger["webhook_url"]).path, "secret": trigger["signing_secret"]}


def signed(secret: str, body: bytes) -> dict[str, str]:
    at = int(time.time())
    return {
        "Content-Type": "application/json",
        "X-Orchestrator-Signature": f"t={at},v1={sign(secret, at, body)}",
    }


def test_an_oversized_chunked_webhook_is_refused_and_counted(server, editor):
    hook = create_hook(editor, "Hook")
    # Over the webhook limit, under the API one: the webhook limit is the one applied.
    big = json.dumps({"text": "x" * WEBHOOK_LIMIT}).encode()
    assert WEBHOOK_LIMIT < len(big) < API_LIMIT
    small = json.dumps({"text": "fits"}).encode()
    headers = signed(hook["secret"], big)
    refused = send(server.port, "POST", hook["path"], pieces(big), headers)
    # The same body with its Content-Length: refused and counted as before, by the middleware
    # under WSGI and before anything reads it under ASGI.
    declared = send(server.port, "POST", hook["path"], None, headers, declared=big)
    accepted = send(server.port, "POST", hook["path"], pieces(small), signed(hook["secret"], small))
    answers = [(answer.status, answer.body) for answer in (refused, declared, accepted)]
    assert [status for status, _ in answers] == [413, 413, 202], answers
    assert refused.json()["detail"] == f"The request body is larger than {WEBHOOK_LIMIT} bytes."
    assert declared.json() == refused.json()
    counts = dict(WebhookRequestCount.objects.values_list("outcome", "count"))
    assert counts == {WebhookOutcome.TOO_LARGE: 2, WebhookOutcome.ACCEPTED: 1}
    assert list(Run.objects.values_list("input__text", flat=True)) == ["fits"]


def test_after_a_chunked_body_a_stream_still_learns_that_the_client_left(editor):
    """In process, through the same ASGI application: the wrapper gives Django the whole body,
    then passes later receive() calls on to the server, so a Server-Sent Events view ends when
    the client disconnects instead of streaming a queued run's events to nobody."""
    created = editor.post(
        "/api/v1/orchestrations", flow("Streamed", status="active"), format="json"
    )
    path = f"/api/v1/orchestrations/{created.json()['id']}/runs/stream"
    body = json.dumps({"input": {"text": "streamed"}}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {editor.raw_token}".encode()),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
        ],
    }

    async def stream_then_leave() -> tuple[dict, dict, bool]:
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": body[:9], "more_body": True})
        await communicator.send_input({"type": "http.request", "body": body[9:]})
        start = await communicator.receive_output(timeout=10)
        first = await communicator.receive_output(timeout=10)
        await communicator.send_input({"type": "http.disconnect"})
        # The run stays queued (no worker here): only the disconnect can end the stream.
        ended, _ = await asyncio.wait({communicator.future}, timeout=10)
        await communicator.wait()  # Cancels it if it did not end; raises what it raised.
        return start, first, bool(ended)

    start, first, ended = async_to_sync(stream_then_leave)()
    assert ended
    assert start["status"] == 200
    assert first["body"].startswith(b": stream open")
    assert list(Run.objects.values_list("input", "status")) == [({"text": "streamed"}, "queued")]
