"""What the fault tests share: a side-effect sink on 127.0.0.1, a worker whose pool children can
be killed one by one, the broker flush, the clock of a soak, and the figures they report."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from django.conf import settings
from django.db import connection

from tests.worker.conftest import Worker, purge_broker

SOAK = os.environ.get("SOAK") == "1"
FIGURES: list[dict] = []


def scale(ci: int, soak: int) -> int:
    """The short count in CI, the full one with SOAK=1."""
    return soak if SOAK else ci


def backend() -> str:
    db = "postgresql" if connection.vendor == "postgresql" else "sqlite"
    return f"{db}+{'redis' if settings.REDIS_URL else 'filesystem'}"


def report(item: str, **figures) -> None:
    """A figure a user can trust, printed in the summary and kept in VAR_DIR/fault-figures.jsonl."""
    line = {"item": item, "backend": backend(), "soak": SOAK, **figures}
    FIGURES.append(line)
    with (Path(settings.VAR_DIR) / "fault-figures.jsonl").open("a") as out:
        out.write(json.dumps(line, default=str) + "\n")


class _SinkHandler(BaseHTTPRequestHandler):
    """`POST /sink/<run>/<step>` records the side effect on arrival, then answers after a short
    random pause (so that a kill often lands while a request is in flight). While the sink's
    `release` event is clear, it holds every call (up to `slow_s`): long enough for the test to
    kill the worker that made it. `/slow/...` is the same without the pause; `/fail/...`
    answers 503 (a retryable failure). Like a payment API, it applies a call once per
    Idempotency-Key: `applied` counts those, `calls` every arrival."""

    server: Sink

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        kind, run_id, step_id = self.path.strip("/").split("/")[:3]
        key = self.headers.get("Idempotency-Key") or f"{run_id}:{step_id}:{time.monotonic()}"
        with self.server.lock:
            if key not in self.server.keys:
                self.server.keys.add(key)
                self.server.applied[(run_id, step_id)] += 1
            self.server.calls[(run_id, step_id)] += 1
            nth = self.server.calls[(run_id, step_id)]
            self.server.records.append((run_id, step_id, nth))
        # While `release` is clear, every call is held (a slow server), up to `slow_s`.
        self.server.release.wait(self.server.slow_s)
        if kind != "slow":
            time.sleep(random.uniform(0, self.server.max_pause_s))
        data = json.dumps({"run": run_id, "step": step_id, "call": nth}).encode()
        try:
            self.send_response(503 if kind == "fail" else 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the worker that asked was killed meanwhile


class Sink(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, *, max_pause_s: float = 0.0, slow_s: float = 10.0) -> None:
        super().__init__(("127.0.0.1", 0), _SinkHandler)
        self.lock = threading.Lock()
        self.calls: Counter = Counter()
        self.applied: Counter = Counter()
        self.keys: set[str] = set()
        self.records: list[tuple[str, str, int]] = []
        self.max_pause_s = max_pause_s
        self.slow_s = slow_s
        self.release = threading.Event()
        self.release.set()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def step(self, node_id: str, *, kind: str = "sink", timeout_s: float = 3, **extra) -> dict:
        """An http node whose side effect lands here, keyed by (run, node). Its `timeout_s`
        sets the lease of a claim (timeout_s + STEP_LEASE_GRACE_S)."""
        return {
            "id": node_id,
            "type": "http",
            "config": {
                "method": "POST",
                "url": f"{self.url}/{kind}/{{{{ run.id }}}}/{node_id}",
                "body": {"run": "{{ run.id }}", "step": node_id},
                "timeout_s": 60,
            },
            "timeout_s": timeout_s,
            **extra,
        }

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class ChaosWorker(Worker):
    """A real worker that can also lose a single pool child (SIGKILL, as the OOM killer does)."""

    def children(self) -> list[int]:
        if not self.process or self.process.poll() is not None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                found.append(int(entry.name))
        return found

    def kill_child(self, *, every: bool = False) -> bool:
        """SIGKILL one pool child (or each of them); the worker forks replacements."""
        children = self.children()
        if not children:
            return False
        for pid in children if every else [random.choice(children)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return True

    def restart(self) -> None:
        self.kill()
        self.start()


class CapturedBroker:
    """Stands in for Celery's publishing (`Task.apply_async`, which `delay` calls too): keeps
    each message in order as (task name, args, countdown), and everything it was sent with."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: deque = deque()
        self.sent: list[dict] = []

    def patch(self):
        from unittest.mock import patch

        broker = self

        def apply_async(task, args=None, kwargs=None, **options):
            with broker.lock:
                broker.queue.append((task.name, tuple(args or ()), options.get("countdown")))
                broker.sent.append({"task": task.name, "args": tuple(args or ()), **options})

        return patch("celery.app.task.Task.apply_async", new=apply_async)

    def next(self):
        with self.lock:
            return self.queue.popleft() if self.queue else None


def flush_broker() -> None:
    """Everything the broker held is gone: FLUSHDB on Redis, an emptied folder otherwise."""
    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.REDIS_URL).flushdb()
    else:
        purge_broker()


def wait_for(predicate, timeout: float, *, reap_every: float | None = None, describe=None) -> float:
    """Poll until `predicate()` holds and return the seconds it took; with `reap_every`, play
    beat's reaper at that interval meanwhile."""
    from runs.services import timers

    start = last_reap = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        now = time.monotonic()
        if now - start > timeout:
            detail = f": {describe()}" if describe else ""
            raise AssertionError(f"timed out after {timeout:.0f} s{detail}")
        if reap_every is not None and now - last_reap >= reap_every:
            timers.reap()
            last_reap = now
        time.sleep(0.1)


def unfinished(runs) -> list:
    """What an unfinished run is doing: its status and the status of each step attempt."""
    from runs.models import StepRun

    return [
        (
            str(run.pk)[:8],
            run.status,
            run.cancel_requested,
            list(
                StepRun.objects.filter(run=run)
                .order_by("node_id", "attempt")
                .values_list("node_id", "attempt", "status", "created_at", "lease_expires_at")
            ),
        )
        for run in runs.exclude(status__in=["succeeded", "failed", "cancelled"])[:5]
    ]
