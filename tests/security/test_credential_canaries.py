"""100 canary credentials are used every way the product uses credentials, and none of them is
ever found in clear: not in the logs, not in an API answer or a page, not in a run's events or
step rows, not in a dump of the database.

The credentials are created through the API (`canary-<uuid>` values of every kind: bearer,
api_key, basic, header) and used by `http` steps (by id and by name, GET and POST, answered 200,
401 and 500, with a retry), by agents with a credential (library agents, inline ones, one declared
in a markdown definition) talking to a local OpenAI-compatible server (answers, tool calls that
go through `http_get`, a refused key, a server error), and by a flow fired through a signed
webhook, whose signing secrets (the first one and the rotated one) are canaries too. The local
server echoes what it is sent, as httpbin's `/headers` does and as many APIs quote the token they
refused. A few values were pasted with a trailing newline (they must work: HTTP allows no
whitespace around a header value, so it is trimmed) and a few hold a line break inside, which
would add a header of their own (they must be refused, without being quoted: the HTTP library
would refuse them too, but name them in its exception and its DEBUG log).

Every canary is searched for as it is and in its encodings (the base64 of `user:password` for
basic, the base64 of the value) by the 32 hex digits of its uuid, which any prefix, suffix, URL
encoding or JSON escaping leaves whole. The figures are printed (`pytest -s`) and asserted.

The first test runs the steps in the test process with the root logger at DEBUG; the second has a
real Celery worker run them with LOG_LEVEL=DEBUG and searches its JSON log too.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client, override_settings
from rest_framework.test import APIClient

from core.choices import Role
from orchestrator.models import Membership, Organization
from orchestrator.services.webhooks import sign
from runs.engine import RUN_TERMINAL
from runs.models import Run, RunEvent, StepRun
from tests.runs.harness import drain, skip_waits
from tests.runs.servers import error, openai_events, reply
from tests.worker.conftest import ROOT, database_url, purge_broker

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/v1"
KINDS = ("bearer", "api_key", "basic", "header")
COUNT = 100
# Of the bearer and api_key credentials, these indexes hold a value pasted with a trailing newline.
PASTED = {0, 41, 84, 97}
# These (bearer, api_key, header) hold a line break inside, and a header after it.
SPLIT = {8, 13, 23}
INJECTED = "X-Injected: yes"
# What an http step's URL answers, by its place in the cycle.
HTTP_OUTCOMES = ("ok", "echo", "refused", "broken")
# What the model server does, by model name.
AGENT_MODES = ("ok", "tool", "refused", "broken")


# --- the canaries -----------------------------------------------------------------------------


@dataclass
class Canary:
    index: int
    kind: str
    core: str  # canary-<32 hex digits>
    value: str  # what the credential stores
    name: str
    id: str = ""

    @property
    def hex(self) -> str:
        return self.core.removeprefix("canary-")

    @property
    def split(self) -> bool:
        return INJECTED in self.value

    def needles(self) -> set[str]:
        """The hex digits catch the value, any text around it, and its URL and JSON escapes;
        base64 hides them, so the base64 forms are searched for as well."""
        encoded = {base64.b64encode(text.encode()).decode() for text in (self.value, self.core)}
        return {self.hex, *encoded}

    def on_the_wire(self, *, agent: bool) -> tuple[str, str]:
        """The header (lower-case name, value) that carries it to the server."""
        if agent or self.kind == "bearer":
            return "authorization", f"Bearer {self.value.strip()}"
        if self.kind == "basic":
            return "authorization", "Basic " + base64.b64encode(self.value.encode()).decode()
        if self.kind == "header":
            name, _, value = self.value.partition(":")
            return name.strip().lower(), value.strip()
        return "x-api-key", self.value.strip()


def make_canaries(count: int) -> list[Canary]:
    canaries = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        core = f"canary-{uuid.uuid4().hex}"
        value = {
            "basic": f"user{index}:{core}",
            "header": f"X-Canary-{index}: {core}",
        }.get(kind, core)
        if index in PASTED:
            value += "\n"
        if index in SPLIT:
            value += f"\r\n{INJECTED}"
        canaries.append(Canary(index, kind, core, value, f"cred-{index:03d}"))
    return canaries


# --- the local server -------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """`/ok` answers 200; `/echo` sends back the request headers; `/status/401` refuses and
    quotes the headers it got; `/status/500` breaks; `/v1/chat/completions` plays the model
    named in the request (see AGENT_MODES)."""

    server: Upstream

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, events: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for event in events:
            self.wfile.write(event)
        self.close_connection = True

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        with self.server.lock:
            self.server.seen.append((self.path, headers))
        path = urlsplit(self.path).path
        if path.endswith("/chat/completions"):
            request = json.loads(body)
            status, answer = self._model(request, headers)
            if status == 200 and request.get("stream"):
                return self._stream(openai_events(answer, request))
            return self._send(status, answer)
        if path == "/echo":
            return self._send(200, {"headers": dict(self.headers.items())})
        if path == "/status/401":
            return self._send(401, {"error": "credentials refused", "got": headers})
        if path == "/status/500":
            return self._send(500, {"error": "upstream broke"})
        return self._send(200, {"ok": True})

    do_GET = do_POST = _answer

    def _model(self, request: dict, headers: dict[str, str]) -> tuple[int, dict]:
        mode = request["model"]
        key = headers.get("authorization", "").removeprefix("Bearer ")
        if mode == "refused":
            # As OpenAI words it, but without masking the key: the worst case.
            return error(401, f"Incorrect API key provided: {key}.")
        if mode == "broken":
            return error(500, "The server had an error while processing your request.")
        if mode == "tool" and request["messages"][-1]["role"] != "tool":
            url = f"{self.server.url}/echo?asked=by-the-model"
            return reply(tools=[("http_get", {"url": url})])
        return reply(f"Done. The key I was called with ends in {key[-4:]}.")


class Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, dict[str, str]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def received(self) -> set[tuple[str, str]]:
        return {pair for _, headers in self.seen for pair in headers.items()}


@contextmanager
def upstream_server() -> Iterator[Upstream]:
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# --- the scenario -----------------------------------------------------------------------------


@dataclass
class Place:
    """Somewhere a canary must not be: its name, its text, and whether the signing secrets may
    be there (only the answers that show a new secret once, by design)."""

    name: str
    text: str | bytes
    shows_signing_secret: bool = False


@dataclass
class Scenario:
    org: Organization
    editor: APIClient
    upstream: Upstream
    canaries: list[Canary]
    flows: dict[str, dict] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    signing_secrets: list[str] = field(default_factory=list)
    answers: list[Place] = field(default_factory=list)
    expected: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)

    def call(self, method: str, path: str, body=None, *, shows_secret: bool = False):
        """An API call of the scenario's: its answer is searched too."""
        response = getattr(self.editor, method)(path, body, format="json")
        assert response.status_code < 500, (path, response.content[:500])
        self.answers.append(Place(f"{method.upper()} {path}", response.content, shows_secret))
        return response

    def create_credentials(self) -> None:
        for canary in self.canaries:
            response = self.call(
                "post",
                f"{API}/credentials",
                {"name": canary.name, "kind": canary.kind, "value": canary.value},
            )
            assert response.status_code == 201, response.json()
            assert "value" not in response.json()
            canary.id = response.json()["id"]

    def create_flow(self, key: str, data: dict) -> dict:
        response = self.call("post", f"{API}/orchestrations", {"status": "active", **data})
        assert response.status_code == 201, response.json()
        self.flows[key] = response.json()
        return self.flows[key]

    def http_flows(self) -> None:
        """Every credential on an http step: GET or POST, by id or by name, to a URL that answers
        200, echoes, refuses (401) or breaks (500, retried once)."""
        for kind in KINDS:
            nodes, expected = [], {}
            for position, canary in enumerate(c for c in self.canaries if c.kind == kind):
                outcome = HTTP_OUTCOMES[position % len(HTTP_OUTCOMES)]
                post, by_name = (position // 4) % 2 == 1, (position // 8) % 2 == 1
                path = {"ok": "/ok", "echo": "/echo", "refused": "/status/401"}.get(
                    outcome, "/status/500"
                )
                node_id = f"call_{canary.index:03d}"
                nodes.append(
                    {
                        "id": node_id,
                        "type": "http",
                        "on_error": "continue",
                        "retry": {"max_attempts": 2 if outcome == "broken" else 1, "backoff_s": 0},
                        "config": {
                            "method": "POST" if post else "GET",
                            "url": f"{self.upstream.url}{path}?n={canary.index}",
                            "credential": canary.name if by_name else canary.id,
                            **({"body": {"note": "{{ run.id }}"}} if post else {}),
                            "timeout_s": 10,
                        },
                    }
                )
                failed = outcome in ("refused", "broken") or canary.split
                attempts = 2 if outcome == "broken" and not canary.split else 1
                expected[node_id] = ("failed" if failed else "succeeded", attempts)
            self.create_flow(
                f"http-{kind}",
                {
                    "name": f"Calls with {kind} credentials",
                    "definition": {"nodes": nodes, "edges": []},
                },
            )
            self.expected[f"http-{kind}"] = expected

    def agent_flows(self) -> None:
        """The bearer and api_key credentials on agents: half of them library agents (created
        through the API), half inline agents in the definition."""
        keyed = [c for c in self.canaries if c.kind in ("bearer", "api_key")]
        for half, group in (("library", keyed[::2]), ("inline", keyed[1::2])):
            nodes, expected = [], {}
            for position, canary in enumerate(group):
                mode = AGENT_MODES[position % len(AGENT_MODES)]
                agent = {
                    "model": f"openai/{mode}",
                    "base_url": f"{self.upstream.url}/v1",
                    "tools": ["http_get"] if mode == "tool" else [],
                    "system_prompt": "You are a canary's keeper.",
                }
                if half == "library":
                    created = self.call(
                        "post",
                        f"{API}/agents",
                        {**agent, "name": f"agent-{canary.index:03d}", "credential": canary.id},
                    )
                    assert created.status_code == 201, created.json()
                    reference = created.json()["id"]
                else:
                    reference = {**agent, "credential": canary.name}
                node_id = f"ask_{canary.index:03d}"
                nodes.append(
                    {
                        "id": node_id,
                        "type": "agent",
                        "on_error": "continue",
                        "retry": {"max_attempts": 2 if mode == "broken" else 1, "backoff_s": 0},
                        "config": {"agent": reference, "prompt": "Check in, please."},
                    }
                )
                failed = mode in ("refused", "broken") or canary.split
                expected[node_id] = (
                    "failed" if failed else "succeeded",
                    2 if mode == "broken" and not canary.split else 1,
                )
            self.create_flow(
                f"agents-{half}",
                {"name": f"Agents ({half})", "definition": {"nodes": nodes, "edges": []}},
            )
            self.expected[f"agents-{half}"] = expected

    def failing_flows(self) -> None:
        """Runs that fail as a whole, so the run's own error is searched too."""
        refused = next(c for c in self.canaries if c.kind == "basic")
        self.create_flow(
            "fail-http",
            {
                "name": "Refused call",
                "definition": {
                    "nodes": [
                        {
                            "id": "call",
                            "type": "http",
                            "config": {
                                "url": f"{self.upstream.url}/status/401",
                                "credential": refused.id,
                            },
                        }
                    ],
                    "edges": [],
                },
            },
        )
        self.expected["fail-http"] = {"call": ("failed", 1)}
        key = next(c for c in self.canaries if c.kind == "api_key" and not c.split)
        self.create_flow(
            "fail-agent",
            {
                "name": "Refused key",
                "definition": {
                    "nodes": [
                        {
                            "id": "ask",
                            "type": "agent",
                            "config": {
                                "agent": {
                                    "model": "openai/refused",
                                    "base_url": f"{self.upstream.url}/v1",
                                    "credential": key.id,
                                },
                                "prompt": "Hello?",
                            },
                        }
                    ],
                    "edges": [],
                },
            },
        )
        self.expected["fail-agent"] = {"ask": ("failed", 1)}

    def markdown_flow(self) -> None:
        """An agent declared in a markdown definition, naming its credential."""
        key = next(c for c in self.canaries if c.kind == "bearer" and not c.split)
        source = (
            "# Keyed agent\nAsks a model with a stored key.\n\n## Agents\n### keyed\n"
            f"- model: openai/ok\n- base_url: {self.upstream.url}/v1\n- credential: {key.name}\n"
            "You answer briefly.\n\n## Steps\n### ask\n- agent: keyed\nSay hello.\n"
        )
        self.create_flow("markdown", {"markdown": source})
        self.expected["markdown"] = {"ask": ("succeeded", 1)}

    def webhook_flow(self) -> list[tuple[str, bytes, dict]]:
        """A flow behind a webhook: its signing secret is shown once on creation, once more on
        rotation, and both must stay out of everything else."""
        header = next(c for c in self.canaries if c.kind == "header" and not c.split)
        created = self.call(
            "post",
            f"{API}/orchestrations",
            {
                "name": "Hooked",
                "status": "active",
                "definition": {
                    "inputs": [{"name": "text", "type": "string"}],
                    "nodes": [
                        {
                            "id": "forward",
                            "type": "http",
                            "config": {
                                "method": "POST",
                                "url": f"{self.upstream.url}/echo",
                                "credential": header.name,
                                "body": {"text": "{{ input.text }}"},
                            },
                        }
                    ],
                    "edges": [],
                },
                "triggers": [{"kind": "webhook"}],
            },
            shows_secret=True,
        )
        assert created.status_code == 201, created.json()
        self.flows["webhook"] = created.json()
        self.expected["webhook"] = {"forward": ("succeeded", 1)}
        trigger = created.json()["triggers"][0]
        first = trigger["signing_secret"]
        rotated = self.call(
            "post", f"{API}/triggers/{trigger['id']}/rotate-secret", shows_secret=True
        ).json()["signing_secret"]
        assert first and rotated and first != rotated
        self.signing_secrets += [first, rotated]
        path = urlsplit(trigger["webhook_url"]).path
        deliveries = []
        for secret, text in ((rotated, "new secret"), (first, "old secret, within 24 h")):
            body = json.dumps({"text": text}).encode()
            deliveries.append((path, body, signed(secret, body)))
        # A forged one: refused, and the refusal is searched too.
        body = b'{"text": "forged"}'
        deliveries.append((path, body, signed("not-the-secret", body)))
        return deliveries

    def build(self) -> None:
        self.create_credentials()
        self.http_flows()
        self.agent_flows()
        self.failing_flows()
        self.markdown_flow()

    def fire(self, deliveries: list[tuple[str, bytes, dict]]) -> None:
        for key, flow in self.flows.items():
            if key == "webhook":
                continue
            times = 2 if key == "fail-http" else 1  # two runs of one flow, for the run diff
            for _ in range(times):
                response = self.call(
                    "post", f"{API}/orchestrations/{flow['id']}/runs", {"input": {}}
                )
                assert response.status_code == 202, response.json()
                self.runs.append(response.json()["id"])
        anonymous = APIClient()
        for path, body, headers in deliveries:
            response = anonymous.post(path, body, content_type="application/json", **headers)
            self.answers.append(Place(f"POST {path}", response.content))
            if response.status_code == 202:
                self.runs.append(response.json()["run_id"])
        assert len(self.runs) == len(self.flows) + 1 + 1  # fail-http twice, the webhook twice

    def check_outcomes(self) -> None:
        """Every step ended as its server meant it to, every run came to rest."""
        for key, flow in self.flows.items():
            for run in Run.objects.filter(orchestration_id=flow["id"]):
                assert run.status in RUN_TERMINAL, (key, run.status)
                got: dict[str, tuple[str, int]] = {}
                for step in run.step_runs.order_by("attempt"):
                    got[step.node_id] = (step.status, step.attempt)
                assert got == self.expected[key], (key, run.error)
        wire = self.upstream.received()
        for canary in self.canaries:
            if canary.split:
                continue
            assert canary.on_the_wire(agent=False) in wire, f"{canary.name} reached the server"
            if canary.kind in ("bearer", "api_key"):
                assert canary.on_the_wire(agent=True) in wire, f"{canary.name} reached the model"
        sent = "\n".join(json.dumps(headers) for _, headers in self.upstream.seen)
        assert not any(canary.hex in sent for canary in self.canaries if canary.split)
        assert INJECTED.split(":")[0].lower() not in sent.lower(), "no value added a header"

    # --- where to look ------------------------------------------------------------------------

    def fetch(self, client: Client, path: str) -> None:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.content[:300])
        self.answers.append(Place(f"GET {path}", response.content))

    def read_everything(self) -> None:
        """Every API answer, page and admin view that shows something of what was used."""
        c = self.editor
        self.fetch(c, f"{API}/credentials?limit=200")
        for canary in self.canaries:
            self.fetch(c, f"{API}/credentials/{canary.id}")
        agents = c.get(f"{API}/agents?limit=200").json()["items"]
        self.fetch(c, f"{API}/agents?limit=200")
        for agent in agents:
            self.fetch(c, f"{API}/agents/{agent['id']}")
        self.fetch(c, f"{API}/orchestrations?limit=200")
        for flow in self.flows.values():
            base = f"{API}/orchestrations/{flow['id']}"
            detail = c.get(base).json()
            for path in (
                base,
                f"{base}/versions",
                f"{base}/versions/1",
                f"{base}/triggers",
                f"{base}/runs?limit=200",
            ):
                self.fetch(c, path)
            for trigger in detail["triggers"]:
                self.fetch(c, f"{API}/triggers/{trigger['id']}")
            exported = self.call(
                "post",
                f"{API}/orchestrations/render-markdown",
                {key: detail[key] for key in ("name", "description", "definition")},
            )
            assert exported.status_code == 200, exported.json()
        self.fetch(c, f"{API}/runs?limit=200")
        for run_id in self.runs:
            self.fetch(c, f"{API}/runs/{run_id}")
            self.fetch(c, f"{API}/runs/{run_id}/steps")
            after = 0
            while after is not None:
                page = c.get(f"{API}/runs/{run_id}/events?after={after}")
                self.answers.append(Place(f"GET /runs/{run_id}/events", page.content))
                after = page.json()["next_after"]
            self.fetch(c, f"{API}/runs/{run_id}/versions")
        failing = self.flows["fail-http"]["id"]
        first, second = Run.objects.filter(orchestration_id=failing).values_list("pk", flat=True)
        self.fetch(c, f"{API}/runs/{first}/diff/{second}")
        self.fetch(c, f"{API}/approvals")
        with override_settings(METRICS_TOKEN="metrics-token-of-the-canary-test"):
            metrics = Client().get(
                "/metrics", HTTP_AUTHORIZATION="Bearer " + settings.METRICS_TOKEN
            )
        assert metrics.status_code == 200
        self.answers.append(Place("GET /metrics", metrics.content))

        # Shared outputs and the public gallery.
        pages = Client()
        for run_id in self.runs[:3]:
            share = c.post(f"{API}/runs/{run_id}/share").json()["share_url"]
            self.fetch(pages, urlsplit(share).path)
        public = self.flows["http-bearer"]
        etag = c.get(f"{API}/orchestrations/{public['id']}").json()["etag"]
        patched = c.patch(
            f"{API}/orchestrations/{public['id']}",
            {"is_public": True, "public_definition": True},
            format="json",
            HTTP_IF_MATCH=f'"{etag}"',
        )
        assert patched.status_code == 200, patched.json()
        for path in (
            "/api/v1/gallery",
            f"/api/v1/gallery/{public['id']}",
            "/gallery/",
            f"/gallery/{public['id']}/",
        ):
            self.fetch(pages, path)

        # The pages a member sees, and the admin.
        users = get_user_model()
        member = users.objects.create_user("keeper", password="pw-long-enough-1")
        Membership.objects.create(user=member, organization=self.org, role=Role.EDITOR)
        pages.force_login(member)
        self.fetch(pages, "/")
        for flow in self.flows.values():
            self.fetch(pages, f"/orchestrations/{flow['id']}/")
        for run_id in self.runs:
            self.fetch(pages, f"/runs/{run_id}/")
        admin = Client()
        admin.force_login(users.objects.create_superuser("root", password="pw-long-enough-2"))
        for path in (
            "/admin/orchestrator/credential/",
            "/admin/orchestrator/agent/",
            "/admin/runs/run/",
            "/admin/runs/steprun/",
        ):
            self.fetch(admin, path)
        for canary in self.canaries[:10]:
            self.fetch(admin, f"/admin/orchestrator/credential/{canary.id}/change/")
        for step in StepRun.objects.filter(status="failed")[:10]:
            self.fetch(admin, f"/admin/runs/steprun/{step.pk}/change/")

    def rows(self) -> list[Place]:
        """The run events and the step rows, as the ORM reads them."""
        events = RunEvent.objects.order_by("run_id", "seq").values()
        steps = StepRun.objects.values()
        runs = Run.objects.values()
        return [
            Place(f"{model} rows", json.dumps(list(rows), default=str))
            for model, rows in (("RunEvent", events), ("StepRun", steps), ("Run", runs))
        ]


def signed(secret: str, body: bytes) -> dict[str, str]:
    at = int(time.time())
    return {"HTTP_X_ORCHESTRATOR_SIGNATURE": f"t={at},v1={sign(secret, at, body)}"}


def dump_database() -> tuple[str, list[Place]]:
    """pg_dump of the test database on PostgreSQL (COPY of every table if pg_dump is not
    installed); on SQLite, the raw bytes of the database file and its WAL (deleted rows
    included) and `iterdump()`."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        path = Path(db["NAME"])
        raw = [
            Place(f"raw {candidate.name}", candidate.read_bytes())
            for candidate in (path, path.with_name(path.name + "-wal"))
            if candidate.exists()
        ]
        with sqlite3.connect(path) as copy:
            dumped = "\n".join(copy.iterdump())
        return "sqlite file + iterdump", [*raw, Place("iterdump", dumped)]
    if shutil.which("pg_dump"):
        env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
        command = [
            "pg_dump",
            "--no-owner",
            "-h",
            db.get("HOST") or "127.0.0.1",
            "-p",
            str(db.get("PORT") or 5432),
            "-U",
            db.get("USER") or "postgres",
            db["NAME"],
        ]
        result = subprocess.run(command, env=env, capture_output=True, check=True, timeout=60)
        return "pg_dump", [Place("pg_dump", result.stdout)]
    buffer = io.StringIO()
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            buffer.write(f"-- {table}\n")
            cursor.copy_expert(f'COPY "{table}" TO STDOUT', buffer)
    return "COPY", [Place("COPY of every table", buffer.getvalue())]


@dataclass
class Findings:
    """Occurrences per place, and a few of them in context, to say where a value leaked."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, place: Place, text: str, match: re.Match) -> None:
        self.counts[place.name] = self.counts.get(place.name, 0) + 1
        if len(self.examples) < 8:
            start, end = max(match.start() - 150, 0), match.end() + 60
            self.examples.append(f"{place.name}: ...{text[start:end]!r}...")

    def report(self) -> str:
        places = "\n".join(f"{count:5d}  {name}" for name, count in sorted(self.counts.items()))
        return "\n".join([*self.examples, "occurrences per place:", places])


def search(scenario: Scenario, places: list[Place]) -> Findings:
    """Every occurrence of a credential needle anywhere, and of a signing secret anywhere but in
    the answers that show it once."""
    needles = {n for canary in scenario.canaries for n in canary.needles()}
    pattern = re.compile("|".join(map(re.escape, sorted(needles))))
    secrets = re.compile("|".join(map(re.escape, sorted(scenario.signing_secrets))))
    findings = Findings()
    for place in places:
        text = place.text.decode("latin-1") if isinstance(place.text, bytes) else place.text
        for match in pattern.finditer(text):
            findings.add(place, text, match)
        if not place.shows_signing_secret:
            for match in secrets.finditer(text):
                findings.add(place, text, match)
    return findings


@contextmanager
def json_log(level: int = logging.DEBUG) -> Iterator[io.StringIO]:
    """Every record of the test process, at `level`, rendered as it happens by the JSON
    formatter of settings.LOGGING (run and step ids merged in, extras and tracebacks included),
    as a server process would write it."""
    options = dict(settings.LOGGING["formatters"]["json"])
    factory = options.pop("()")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(factory(**options))
    handler.setLevel(level)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def log_places(caplog, stream: io.StringIO) -> list[Place]:
    """Each captured record with every attribute (the raw arguments and extras), and the
    JSON lines as written."""
    places = [
        Place(f"log {record.name}", f"{record.getMessage()}\n{record.__dict__!r}")
        for record in caplog.records
    ]
    places.append(Place("log JSON lines", stream.getvalue()))
    return places


def build_scenario(org, editor, upstream) -> tuple[Scenario, list]:
    scenario = Scenario(org, editor, upstream, make_canaries(COUNT))
    scenario.build()
    deliveries = scenario.webhook_flow()
    return scenario, deliveries


def figures(scenario: Scenario, places: list[Place], dump_kind: str, label: str) -> str:
    return (
        f"\ncredential canaries ({label}, {connection.vendor}): {len(scenario.canaries)} "
        f"credentials + {len(scenario.signing_secrets)} signing secrets, "
        f"{len(scenario.upstream.seen)} calls received by the local server, "
        f"{len(places)} places searched ({sum(p.name.startswith('log') for p in places)} log "
        f"records, {len(scenario.answers)} API answers and pages, run/step/event rows, "
        f"{dump_kind}), occurrences found = 0"
    )


@pytest.fixture
def upstream(settings) -> Iterator[Upstream]:
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with upstream_server() as server:
        yield server


@pytest.fixture
def broker():
    """Transactions commit in these tests, so their on_commit hooks publish to the broker."""
    purge_broker()
    yield
    purge_broker()


def settle_in_process(run_ids: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while Run.objects.filter(pk__in=run_ids).exclude(status__in=RUN_TERMINAL).exists():
        assert time.monotonic() < deadline, "the runs did not come to rest"
        drain()
        skip_waits()


def everything(scenario: Scenario, caplog, stream: io.StringIO) -> tuple[str, list[Place]]:
    """Read every answer and page, then gather them with the rows, the logs and the dump."""
    scenario.read_everything()
    dump_kind, dump = dump_database()
    # The dump holds the rows (a credential's name is stored in clear): an empty one finds nothing.
    name = scenario.canaries[-1].name
    for place in dump:
        text = place.text if isinstance(place.text, str) else place.text.decode("latin-1")
        assert place.name.startswith("raw") or name in text, f"{place.name} holds the rows"
    return dump_kind, [*scenario.answers, *scenario.rows(), *log_places(caplog, stream), *dump]


def test_canary_credentials_appear_nowhere_when_the_steps_run_in_process(
    org, editor, upstream, broker, caplog
):
    started = time.monotonic()
    caplog.set_level(logging.DEBUG)
    with json_log() as stream:
        scenario, deliveries = build_scenario(org, editor, upstream)
        scenario.fire(deliveries)
        settle_in_process(scenario.runs)
        scenario.check_outcomes()
        dump_kind, places = everything(scenario, caplog, stream)
    assert sum(record.levelno == logging.DEBUG for record in caplog.records) > 100
    assert {"httpx", "runs.services.execution"} <= {record.name for record in caplog.records}
    findings = search(scenario, places)
    assert findings.counts == {}, findings.report()
    print(figures(scenario, places, dump_kind, f"in process, {time.monotonic() - started:.0f} s"))


@pytest.mark.worker
def test_canary_credentials_appear_nowhere_when_a_worker_runs_the_steps(
    org, editor, upstream, broker, caplog, tmp_path
):
    started = time.monotonic()
    caplog.set_level(logging.DEBUG)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "VAR_DIR": str(settings.VAR_DIR),
        "HTTP_ALLOWED_NETWORKS": "127.0.0.0/8",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
        "PYTHONUNBUFFERED": "1",
    }
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    log_path = tmp_path / "worker.log"
    with json_log() as stream, log_path.open("w") as log:
        scenario, deliveries = build_scenario(org, editor, upstream)
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "config", "worker"),
                *("--loglevel", "DEBUG", "--concurrency", "2"),
                *("--without-heartbeat", "--without-gossip", "--without-mingle"),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            scenario.fire(deliveries)
            deadline = time.monotonic() + 90
            pending = Run.objects.filter(pk__in=scenario.runs).exclude(status__in=RUN_TERMINAL)
            while pending.exists():
                assert worker.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.25)
        finally:
            # Every line is written already (unbuffered): no need for a warm shutdown.
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
        scenario.check_outcomes()
        dump_kind, places = everything(scenario, caplog, stream)
    worker_log = log_path.read_text()
    lines = [json.loads(line) for line in worker_log.splitlines() if line.startswith("{")]
    assert any(line.get("level") == "debug" for line in lines), "the worker logged at DEBUG"
    assert {"httpx", "runs.services.execution"} <= {line.get("logger") for line in lines}
    places.append(Place("log worker", worker_log))
    findings = search(scenario, places)
    assert findings.counts == {}, findings.report()
    print(
        figures(scenario, places, dump_kind, f"real worker, {time.monotonic() - started:.0f} s")
        + f"; the worker wrote {len(lines)} JSON log lines"
    )
