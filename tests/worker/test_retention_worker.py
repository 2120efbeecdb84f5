"""Pruning old runs while a real worker executes new ones: both go on, neither waits for the
other, and the counters of /metrics go on rising."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db.models import F

from orchestrator.services.orchestrations import create_orchestration
from runs.engine import RUN_TERMINAL
from runs.models import Run
from runs.services import lifecycle, retention
from tests.metrics.scrape import scrape
from tests.worker.conftest import wait_until

pytestmark = pytest.mark.worker


class Slow(BaseHTTPRequestHandler):
    """Answers after half a second, so a run stays in progress while the prune goes on."""

    def do_GET(self) -> None:
        time.sleep(0.5)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def slow_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_old_runs_are_pruned_while_the_worker_runs_new_ones(org, worker, settings, slow_server):
    settings.RUN_RETENTION_DAYS = 30
    quick = create_orchestration(
        org,
        {
            "name": "Quick",
            "status": "active",
            "definition": {"nodes": [{"id": "a", "type": "transform", "config": {"output": "x"}}]},
        },
    )
    slow = create_orchestration(
        org,
        {
            "name": "Slow",
            "status": "active",
            "definition": {
                "nodes": [
                    {"id": "call", "type": "http", "config": {"url": f"{slow_server}/"}},
                    {"id": "done", "type": "transform", "config": {"output": "ok"}},
                ],
                "edges": [{"source": "call", "target": "done"}],
            },
        },
    )
    old = [lifecycle.fire(quick, {})[0].pk for _ in range(30)]
    wait_until(lambda: Run.objects.filter(pk__in=old, status="succeeded").count() == 30)
    shift = timedelta(days=40)
    Run.objects.filter(pk__in=old).update(
        started_at=F("started_at") - shift, finished_at=F("finished_at") - shift
    )
    counted = scrape(settings).value("orchestrator_runs_total", status="succeeded", trigger="api")

    new = [lifecycle.fire(slow, {})[0].pk for _ in range(6)]
    pruned = retention.prune(batch_size=3)
    unfinished_when_pruned = Run.objects.filter(pk__in=new).exclude(status__in=RUN_TERMINAL)

    assert pruned["runs"] == 30
    assert unfinished_when_pruned.exists(), "the prune did not overlap the new runs"
    wait_until(lambda: Run.objects.filter(pk__in=new, status="succeeded").count() == 6)
    assert not Run.objects.filter(pk__in=old).exists()
    total = scrape(settings).value("orchestrator_runs_total", status="succeeded", trigger="api")
    assert total == counted + 6
