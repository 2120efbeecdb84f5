"""Workers SIGKILLed while agent steps talk to a model and call tools: each run's conversation
goes on from what was recorded, so no model call that was answered and recorded is made again,
and no tool call whose result was recorded runs again.

The model is a local OpenAI-compatible server that answers from the conversation it is sent (a
tool call per turn until the run has TOOLS results, then the answer), so a resumed conversation
gets the answers a fresh one would; the tool is a local HTTP server that counts its calls by
Idempotency-Key. Both note when each call arrived: a call that arrives after the event that
recorded its answer is a repeat of a finished call."""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings

from orchestrator.services.orchestrations import create_orchestration
from runs.engine import RUN_TERMINAL
from runs.models import Run, RunEvent, StepRun
from runs.services import lifecycle
from tests.fault.chaos import ChaosWorker, report, scale, unfinished, wait_for
from tests.fault.conftest import REAP_EVERY_S
from tests.fault.test_killed_workers import play_beat
from tests.runs.servers import openai_events, reply

pytestmark = pytest.mark.worker

RUNS = scale(6, 50)
KILLS = scale(3, 12)
TOOLS = 3  # tool calls per run: TOOLS + 1 model calls
TOKENS = (11, 7)
POOL = getattr(settings, "CELERY_WORKER_POOL", "prefork")
RUN_IN_PROMPT = re.compile(r"Run ([0-9a-f-]{36})")


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def log_message(self, *args) -> None:
        pass

    def _answer(self, body: bytes, content_type: str = "application/json") -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the worker that asked was killed meanwhile

    def do_POST(self) -> None:
        """The model: a tool call per turn until the run has TOOLS results, then the answer."""
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        messages = request["messages"]
        run_id = next(
            m.group(1)
            for message in messages
            if message["role"] == "user" and (m := RUN_IN_PROMPT.search(str(message["content"])))
        )
        done = sum(1 for message in messages if message["role"] == "tool")
        self.server.arrived(("model", run_id, done))
        time.sleep(random.uniform(0.05, 0.3))  # a kill often lands while a call is in flight
        if done < TOOLS:
            url = f"{self.server.tools_url}/page/{run_id}/{done}"
            answer = reply(tools=[("http_get", {"url": url})], tokens=TOKENS)[1]
            answer["choices"][0]["message"]["tool_calls"][0]["id"] = f"call_{done}"
        else:
            answer = reply(f"Read {done} pages.", tokens=TOKENS)[1]
        self._answer(b"".join(openai_events(answer, request)), "text/event-stream")

    def do_GET(self) -> None:
        """The tool: a page, counted by the call's Idempotency-Key."""
        key = self.headers.get("Idempotency-Key") or ""
        self.server.arrived(("tool", key))
        time.sleep(random.uniform(0.0, 0.2))
        self._answer(json.dumps({"key": key}).encode())


class Recorder(ThreadingHTTPServer):
    """Notes when each call arrived, by what it was: ("model", run, tool results it was sent)
    or ("tool", Idempotency-Key)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.arrivals: dict[tuple, list[float]] = defaultdict(list)
        self.tools_url = self.url
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def arrived(self, what: tuple) -> None:
        with self.lock:
            self.arrivals[what].append(time.time())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.shutdown()
    server.server_close()


def agent_flow(model_url: str) -> dict:
    agent = {"model": "openai/local", "base_url": f"{model_url}/v1", "tools": ["http_get"]}
    agent["price"] = {"input_per_1k": 1, "output_per_1k": 1}
    prompt = f"Run {{{{ run.id }}}}: read {TOOLS} pages."
    node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": prompt}}
    # The lease is timeout_s + STEP_LEASE_GRACE_S: a lost conversation is taken up after it.
    return {"nodes": [{**node, "timeout_s": 8}], "edges": []}


def in_conversation(worker: ChaosWorker) -> bool:
    """An agent step is running and has recorded part of its conversation: a kill now loses a
    conversation midway (and a prefork pool is up)."""
    return StepRun.objects.filter(status="running", transcript__isnull=False).exists() and (
        POOL != "prefork" or bool(worker.children())
    )


def finished_at(run: Run) -> tuple[dict[tuple, float], int]:
    """When each model call's answer and each tool call's result were first recorded (their
    events), and how many such events the run has."""
    recorded: dict[tuple, float] = {}
    told = RunEvent.objects.filter(run=run, type__in=["agent_turn", "tool_result"]).order_by("seq")
    for kind, data, ts in told.values_list("type", "data", "ts"):
        if kind == "agent_turn":
            recorded.setdefault(("model", str(run.pk), data["turn"] - 1), ts.timestamp())
        else:
            key = re.search(r'\\"key\\": \\"([^\\"]+)', data["preview"])
            assert key, data
            recorded.setdefault(("tool", key.group(1)), ts.timestamp())
    return recorded, told.count()


def test_agent_steps_go_on_from_their_record_when_workers_die(org, fault_env, recorder):
    seed = int(os.environ.get("FAULT_SEED") or time.time())
    rng = random.Random(seed)
    flow = create_orchestration(
        org, {"name": "Pages", "status": "active", "definition": agent_flow(recorder.url)}
    )
    runs = Run.objects.filter(orchestration=flow)
    worker = ChaosWorker(fault_env, concurrency=2)
    worker.start()
    kills: Counter = Counter()
    try:
        for kill in range(KILLS):
            for _ in range(RUNS * (kill + 1) // KILLS - runs.count()):
                lifecycle.fire(flow, {})
            deadline = time.monotonic() + 60
            while not in_conversation(worker) and time.monotonic() < deadline:
                play_beat(0.1)
            time.sleep(rng.uniform(0, 0.4))
            if kill % 2 == 1 and worker.children():
                kills["pool_child"] += worker.kill_child()
            else:
                worker.restart()
                kills["worker"] += 1
        wait_for(
            lambda: not runs.exclude(status__in=RUN_TERMINAL).exists(),
            timeout=300,
            reap_every=REAP_EVERY_S,
            describe=lambda: unfinished(runs),
        )
    finally:
        worker.stop()

    arrivals = dict(recorder.arrivals)
    steps = StepRun.objects.filter(run__orchestration=flow)
    lost = list(steps.filter(error__code="worker_lost"))
    made = {"model": 0, "tool": 0}
    repeated = {"model": 0, "tool": 0}
    told_twice, miscounted = 0, []
    for run in runs:
        recorded, told = finished_at(run)
        for what, when in recorded.items():
            calls = arrivals.get(what, [])
            made[what[0]] += len(calls)
            repeated[what[0]] += sum(1 for at in calls if at > when)
        told_twice += told - len(recorded)
        # The usage counts each model call once, whichever attempt made it.
        if (run.tokens_input, run.tokens_output) != (
            TOKENS[0] * (TOOLS + 1),
            TOKENS[1] * (TOOLS + 1),
        ):
            miscounted.append(run.pk)
    resumed = [step for step in lost if step.transcript]
    report(
        "durable agents",
        seed=seed,
        pool=POOL,
        runs=len(runs),
        kills=dict(kills),
        lost_attempts=len(lost),
        resumed_midway=len(resumed),
        model_calls_expected=len(runs) * (TOOLS + 1),
        model_calls_made=made["model"],
        tool_calls_expected=len(runs) * TOOLS,
        tool_calls_made=made["tool"],
        finished_calls_repeated=repeated["model"] + repeated["tool"],
        events_told_twice=told_twice,
    )

    assert Counter(runs.values_list("status", flat=True)) == {"succeeded": RUNS}
    assert all(run.output == f"Read {TOOLS} pages." for run in runs)
    assert resumed, "no kill caught a conversation midway"
    # Each model call and each tool result is told once, and counted once.
    assert told_twice == 0 and not miscounted
    assert made["model"] >= len(runs) * (TOOLS + 1) and made["tool"] >= len(runs) * TOOLS
    # No call that had finished (its answer or result recorded) was made again ...
    assert repeated == {"model": 0, "tool": 0}
    # ... and the only calls beyond those needed are ones in flight when a worker died: at most
    # one per lost attempt (a conversation waits on one call at a time here).
    extra = made["model"] + made["tool"] - len(runs) * (2 * TOOLS + 1)
    assert 0 <= extra <= len(lost)
