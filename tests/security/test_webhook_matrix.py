"""Inbound webhooks against a real server: every forged, stale, replayed or oversized request is
answered as API.md says (401 or 413) and starts no run.

The app runs under daphne (the production web server, Procfile `web`) in a subprocess on the
test database, and requests are written on a raw socket, so Content-Length can be left out
(chunked) or understated, which no test client allows: that is what reaches the body-size
middleware (orchestrator/middleware.py) and the view's bounded read as it would in production.
"""

from __future__ import annotations

import ast
import contextlib
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
from django.db import connection
from rest_framework.test import APIClient

from orchestrator.services.webhooks import sign
from runs.models import Run
from tests.serving import ROOT, serve

LIMIT = 1024 * 1024  # WEBHOOK_MAX_BODY_BYTES, the default the subprocess runs with

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def daphne(django_db_setup, tmp_path_factory):
    db = connection.settings_dict
    if not db["ENGINE"].endswith("sqlite3"):
        pytest.skip("the daphne subprocess is wired for the SQLite test database")
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with serve(log, WEBHOOK_MAX_BODY_BYTES=str(LIMIT)) as base:
        yield urlsplit(base).port


def request(
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    content_length: int | str | None = "exact",
    chunked: bool = False,
) -> tuple[int, bytes]:
    """One request on a raw socket. `content_length=None` sends none; an int sends that number
    whatever the body; `chunked` sends the body in 64 KiB chunks."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 65536]), body[i : i + 65536])
            for i in range(0, len(body), 65536)
        )
        payload += b"0\r\n\r\n"
    else:
        if content_length == "exact":
            lines.append(f"Content-Length: {len(body)}")
        elif content_length is not None:
            lines.append(f"Content-Length: {content_length}")
        payload = body
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        # Send in a thread: the server may answer (and close) before it has read everything.
        def send() -> None:
            with contextlib.suppress(OSError):
                sock.sendall(head + payload)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        sender.join(timeout=30)
    status_line, _, rest = received.partition(b"\r\n")
    if not status_line:
        return 0, b""
    head_out, _, body_out = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head_out.lower():
        body_out = dechunk(body_out)
    return int(status_line.split()[1]), body_out


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


FLOW = {
    "status": "active",
    "definition": {
        "inputs": [{"name": "text", "type": "string"}],
        "nodes": [{"id": "echo", "type": "transform", "config": {"output": "{{ input }}"}}],
    },
    "triggers": [{"kind": "webhook"}],
}


def create_hook(client: APIClient, name: str) -> dict:
    created = client.post("/api/v1/orchestrations", {**FLOW, "name": name}, format="json")
    assert created.status_code == 201, created.content
    trigger = created.json()["triggers"][0]
    return {"path": urlsplit(trigger["webhook_url"]).path, "secret": trigger["signing_secret"]}


@pytest.fixture
def hooks(editor):
    return create_hook(editor, "Hook A"), create_hook(editor, "Hook B")


def signed(secret: str, body: bytes, at: int | None = None) -> str:
    at = int(time.time()) if at is None else at
    return f"t={at},v1={sign(secret, at, body)}"


BODY = json.dumps({"text": "hello"}).encode()
BIG = json.dumps({"text": "x" * (LIMIT + 1024)}).encode()


def case_request(case: str, hook: dict, other: dict) -> dict:
    """The request for one case of the matrix: body, headers and how the length is sent."""
    now = int(time.time())
    sig = {"X-Orchestrator-Signature": signed(hook["secret"], BODY)}
    cases = {
        "missing header": {"body": BODY, "headers": {}},
        "wrong secret": {
            "body": BODY,
            "headers": {"X-Orchestrator-Signature": signed("whsec_wrong", BODY)},
        },
        "one byte of body changed": {"body": BODY.replace(b"hello", b"hellp"), "headers": sig},
        # A few seconds more ahead: it must still be over 300 s ahead when the server reads it.
        "timestamp +301 s": {
            "body": BODY,
            "headers": {"X-Orchestrator-Signature": signed(hook["secret"], BODY, now + 306)},
        },
        "timestamp -301 s": {
            "body": BODY,
            "headers": {"X-Orchestrator-Signature": signed(hook["secret"], BODY, now - 301)},
        },
        "non-hex signature": {
            "body": BODY,
            "headers": {"X-Orchestrator-Signature": f"t={now},v1={'z' * 64}"},
        },
        "empty v1": {"body": BODY, "headers": {"X-Orchestrator-Signature": f"t={now},v1="}},
        "another trigger's secret": {
            "body": BODY,
            "headers": {"X-Orchestrator-Signature": signed(other["secret"], BODY)},
        },
        "oversized, correct Content-Length": {
            "body": BIG,
            "headers": {"X-Orchestrator-Signature": signed(hook["secret"], BIG)},
        },
        "oversized, chunked without Content-Length": {
            "body": BIG,
            "headers": {"X-Orchestrator-Signature": signed(hook["secret"], BIG)},
            "chunked": True,
        },
        "oversized, understated Content-Length": {
            "body": BIG,
            "headers": {"X-Orchestrator-Signature": signed(hook["secret"], BIG)},
            "content_length": 1000,
        },
    }
    return cases[case]


# API.md: a wrong token or signature, or `t` more than 300 s away, answers 401; a body over the
# limit answers 413. A body cut short by an understated Content-Length is not the signed body.
EXPECTED = {
    "missing header": {401},
    "wrong secret": {401},
    "one byte of body changed": {401},
    "timestamp +301 s": {401},
    "timestamp -301 s": {401},
    "non-hex signature": {401},
    "empty v1": {401},
    "another trigger's secret": {401},
    "oversized, correct Content-Length": {413},
    "oversized, chunked without Content-Length": {413},
    "oversized, understated Content-Length": {401, 413},
}


def test_every_forged_or_oversized_request_is_refused_and_starts_nothing(daphne, hooks):
    hook, other = hooks
    answers = {}
    for case in EXPECTED:
        spec = case_request(case, hook, other)
        status, body = request(
            daphne,
            "POST",
            hook["path"],
            spec["body"],
            {"Content-Type": "application/json", **spec["headers"]},
            content_length=spec.get("content_length", "exact"),
            chunked=spec.get("chunked", False),
        )
        error = json.loads(body)["error"] if body.startswith(b"{") else body[:80]
        answers[case] = (status, error)
    wrong = {
        case: answer
        for case, answer in answers.items()
        if answer[0] not in EXPECTED[case]
        or answer[1] != {401: "unauthorized", 413: "payload_too_large"}[answer[0]]
    }
    assert wrong == {}
    assert Run.objects.count() == 0
    print(f"\nwebhook matrix: {len(answers)} cases refused over daphne, 0 runs: {answers}")


def test_controls_a_signed_request_starts_one_run_chunked_or_not(daphne, hooks):
    """Without these, a refusal above could be the server refusing everything."""
    hook, _ = hooks
    plain = request(
        daphne,
        "POST",
        hook["path"],
        BODY,
        {
            "Content-Type": "application/json",
            "X-Orchestrator-Signature": signed(hook["secret"], BODY),
        },
    )
    other_body = json.dumps({"text": "chunked"}).encode()
    chunked = request(
        daphne,
        "POST",
        hook["path"],
        other_body,
        {
            "Content-Type": "application/json",
            "X-Orchestrator-Signature": signed(hook["secret"], other_body),
        },
        chunked=True,
    )
    assert (plain[0], chunked[0]) == (202, 202), (plain, chunked)
    assert sorted(Run.objects.values_list("input__text", flat=True)) == ["chunked", "hello"]


def test_a_body_just_under_the_limit_is_accepted_chunked(daphne, hooks):
    hook, _ = hooks
    body = json.dumps({"text": "y" * (LIMIT - 100)}).encode()
    assert len(body) <= LIMIT
    status, _ = request(
        daphne,
        "POST",
        hook["path"],
        body,
        {
            "Content-Type": "application/json",
            "X-Orchestrator-Signature": signed(hook["secret"], body),
        },
        chunked=True,
    )
    assert status == 202
    assert Run.objects.count() == 1


def test_a_replayed_signature_starts_no_second_run(daphne, hooks):
    hook, _ = hooks
    headers = {
        "Content-Type": "application/json",
        "X-Orchestrator-Signature": signed(hook["secret"], BODY),
    }
    first = request(daphne, "POST", hook["path"], BODY, headers)
    replays = [request(daphne, "POST", hook["path"], BODY, headers) for _ in range(3)]
    assert first[0] == 202
    run_id = json.loads(first[1])["run_id"]
    assert [(status, json.loads(body)["run_id"]) for status, body in replays] == [(202, run_id)] * 3
    assert Run.objects.count() == 1


def test_the_same_matrix_in_process_answers_the_same(hooks):
    """The Django test client cannot leave Content-Length out or understate it; the rest of the
    matrix goes through it too, so a difference between the two servers would show."""
    hook, other = hooks
    client = APIClient()
    checked = 0
    for case, expected in EXPECTED.items():
        spec = case_request(case, hook, other)
        if spec.get("chunked") or "content_length" in spec:
            continue
        extra = {
            f"HTTP_{name.upper().replace('-', '_')}": value
            for name, value in spec["headers"].items()
        }
        response = client.generic(
            "POST", hook["path"], spec["body"], content_type="application/json", **extra
        )
        assert response.status_code in expected, (case, response.status_code)
        checked += 1
    assert checked == len(EXPECTED) - 2
    assert Run.objects.count() == 0


# --- the comparison itself, read from the source ---------------------------------------------

WEBHOOK_SOURCES = [
    ROOT / "orchestrator" / "services" / "webhooks.py",
    ROOT / "orchestrator" / "api" / "trigger_views.py",
    ROOT / "runs" / "services" / "firing.py",
    ROOT / "runs" / "api" / "webhook_views.py",
]
SECRET_WORDS = ("sig", "expected", "candidate", "given", "digest", "mac", "secret")


def names_in(node: ast.AST) -> set[str]:
    found = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            found.add(child.id.lower())
        elif isinstance(child, ast.Attribute):
            found.add(child.attr.lower())
    return found


def test_signatures_are_compared_in_constant_time_and_never_with_equals():
    tree = ast.parse(WEBHOOK_SOURCES[0].read_text())
    verify = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "verify"
    )
    calls = [
        node
        for node in ast.walk(verify)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compare_digest"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "hmac"
    ]
    assert len(calls) == 1
    offenders = []
    for path in WEBHOOK_SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq | ast.Is | ast.IsNot) for op in node.ops):
                continue
            words = names_in(node)
            if any(word in name for name in words for word in SECRET_WORDS):
                offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []
