"""Runs executed by a real Celery worker process, end to end."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run, RunEvent, StepRun
from runs.services import lifecycle
from tests.worker.conftest import Worker, wait_until

pytestmark = pytest.mark.worker


class Upstream(BaseHTTPRequestHandler):
    """`/flaky` fails its first call; `/fact/<n>` answers a fact; `/slow` takes 3 s once."""

    hits: Counter = Counter()

    def do_GET(self) -> None:
        self.hits[self.path] += 1
        if self.path == "/flaky" and self.hits[self.path] == 1:
            return self._send(500, {"error": "try again"})
        if self.path == "/slow" and self.hits[self.path] == 1:
            time.sleep(3)
        if self.path.startswith("/fact/"):
            return self._send(200, {"fact": f"fact number {self.path.rsplit('/', 1)[1]}"})
        return self._send(200, {"items": [1, 2, 3]})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def upstream():
    Upstream.hits = Counter()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def six_nodes(base: str) -> dict:
    return {
        "nodes": [
            {
                "id": "fetch",
                "type": "http",
                "config": {"url": f"{base}/flaky"},
                "retry": {"max_attempts": 2, "backoff_s": 0.2},
            },
            {
                "id": "count",
                "type": "transform",
                "config": {"output": "{{ steps.fetch.output.body['items'] | length }}"},
            },
            {
                "id": "research",
                "type": "agent",
                "config": {
                    "agent": {
                        "model": "builtin/script",
                        "tools": ["http_get"],
                        "price": {"input_per_1k": 1.0, "output_per_1k": 2.0},
                    },
                    "prompt": "Find two facts",
                    "script": [
                        {"tool": "http_get", "args": {"url": f"{base}/fact/1"}},
                        {"tool": "http_get", "args": {"url": f"{base}/fact/2"}},
                        "Two facts found.",
                    ],
                },
            },
            {"id": "big", "type": "transform", "config": {"output": "many"}},
            {"id": "small", "type": "transform", "config": {"output": "few"}},
            {
                "id": "report",
                "type": "transform",
                "config": {"output": "{{ steps.research.output }} {{ steps.big.output }}"},
            },
        ],
        "edges": [
            {"source": "fetch", "target": "count"},
            {"source": "fetch", "target": "research"},
            {"source": "count", "target": "big", "condition": "output > 2"},
            {"source": "count", "target": "small", "condition": "output <= 2"},
            {"source": "big", "target": "report"},
            {"source": "small", "target": "report"},
            {"source": "research", "target": "report"},
        ],
    }


def finished(run: Run):
    return lambda: Run.objects.get(pk=run.pk).status in ("succeeded", "failed", "cancelled")


def test_a_worker_runs_fan_out_condition_retry_and_an_agent_with_tools(org, worker, upstream):
    flow = create_orchestration(
        org, {"name": "Six", "status": "active", "definition": six_nodes(upstream)}
    )
    run, _ = lifecycle.fire(flow, {})
    wait_until(finished(run), timeout=90)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert run.output == "Two facts found. many"

    latest = {s.node_id: s for s in StepRun.objects.filter(run=run).order_by("attempt")}
    assert {k: s.status for k, s in latest.items()} == {
        "fetch": "succeeded",
        "count": "succeeded",
        "research": "succeeded",
        "big": "succeeded",
        "small": "skipped",
        "report": "succeeded",
    }
    attempts = StepRun.objects.filter(run=run, node_id="fetch").order_by("attempt")
    assert [(s.attempt, s.status) for s in attempts] == [(1, "failed"), (2, "succeeded")]
    for node_id in ("fetch", "count", "research", "big", "report"):
        step = latest[node_id]
        assert step.input is not None, node_id
        assert step.duration_ms is not None, node_id
    research = latest["research"]
    assert research.output == "Two facts found."
    assert (research.turns, research.tool_calls) == (3, 2)
    assert research.tokens_input > 0 and research.tokens_output > 0
    assert research.cost_usd > 0
    assert run.cost_usd == research.cost_usd
    assert run.tokens_input == research.tokens_input
    types = list(RunEvent.objects.filter(run=run).values_list("type", flat=True))
    assert types.count("tool_execution") == 2
    assert types.count("tool_result") == 2
    assert types.count("agent_turn") == 3
    assert "step_retry" in types
    assert Upstream.hits["/fact/1"] == 1


def test_a_worker_killed_mid_step_loses_nothing(org, worker_env, upstream):
    flow = create_orchestration(
        org,
        {
            "name": "Slow",
            "status": "active",
            "definition": {
                "nodes": [
                    {
                        "id": "slow",
                        "type": "http",
                        "config": {"url": f"{upstream}/slow"},
                        "timeout_s": 5,
                    },
                    {
                        "id": "after",
                        "type": "transform",
                        "config": {"output": "{{ steps.slow.status }}"},
                    },
                ],
                "edges": [{"source": "slow", "target": "after"}],
            },
        },
    )
    first = Worker(worker_env, concurrency=1)
    first.start()
    run, _ = lifecycle.fire(flow, {})
    wait_until(lambda: StepRun.objects.filter(run=run, status="running").exists(), timeout=60)
    time.sleep(0.5)
    first.kill()
    second = Worker(worker_env, concurrency=1)
    second.start()
    try:
        wait_until(finished(run), timeout=90, reap=True)
    finally:
        second.stop()
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert run.output == "succeeded"
    slow = list(StepRun.objects.filter(run=run, node_id="slow").order_by("attempt"))
    assert [s.status for s in slow] == ["failed", "succeeded"]
    assert slow[0].error["code"] == "worker_lost"
    for node_id in ("slow", "after"):
        assert StepRun.objects.filter(run=run, node_id=node_id, status="succeeded").count() == 1
    assert list(RunEvent.objects.filter(run=run).values_list("seq", flat=True)) == list(
        range(1, run.last_seq + 1)
    )
