"""Live trace latency: from an event committed in this process to a websocket client of a
daphne process receiving it, through the Redis channel layer; and from a piece of a model's
streamed answer handed to a step's delta sink to the clients' agent_delta frames.

This process plays the worker: `append_now` commits and wakes the consumers through the
notifier in runs.services.events; the wake-up carries the event, so the consumers send it on
without reading it back. The clients run in a thread of their own.

Import after django.setup() (bench.engine does).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import threading
import time
from functools import partial
from typing import Any

from websockets.asyncio.client import connect

from bench.common import free_port, percentile, progress, report, serving
from core.choices import Role
from orchestrator.models import ApiToken
from runs.engine.redaction import Redactor
from runs.models import Run
from runs.services.deltas import DeltaSink
from runs.services.events import append_now, later, publish_delta

CLIENTS = 5
EVENTS = 300
GAP_S = (0.005, 0.05)  # between appends, at random: an agent streaming its turn
DELTAS = 200
# Between pieces of streamed text: over the sink's interval, so that each goes out at once (the
# path's own latency, as a turn's first piece has it); then as fast as a provider streams, where
# a piece may wait up to the interval for its frame.
DELTA_GAP_S = (0.1, 0.13)
STREAM_GAP_S = 0.01
# As Procfile.production runs the websocket server: persistent connections stay off under ASGI,
# so every read of a wake-up opens a database connection.
SERVER_ENV = {"DB_CONN_MAX_AGE": "0", "LOG_LEVEL": "WARNING"}


class Listeners:
    """CLIENTS websocket clients on one event loop in a thread; each records
    (seq, latency, received at) per event."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[list[Any]] = [[] for _ in range(CLIENTS)]
        self.connected = threading.Barrier(CLIENTS + 1, timeout=30)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="ws-clients")

    def _run(self) -> None:
        try:
            asyncio.run(self._all())
        except BaseException as exc:  # reported to the main thread, which raises it
            self.failure = exc
            self.connected.abort()

    async def _all(self) -> None:
        await asyncio.gather(*(self._listen(mine) for mine in self.samples))

    async def _listen(self, mine: list[Any]) -> None:
        async with connect(self.url, proxy=None, compression=None) as socket:
            await asyncio.to_thread(self.connected.wait)
            async for raw in socket:
                received = time.time()
                frame = json.loads(raw)
                for event in frame.get("events", []):
                    if event["type"] == "bench_done":
                        return
                    sent_at = event["data"]["sent_at"]
                    mine.append((event["seq"], received - sent_at, received))

    def __enter__(self) -> Listeners:
        self.thread.start()
        try:
            self.connected.wait()  # every socket accepted: its consumer is in the run's group
        except threading.BrokenBarrierError:
            self.thread.join(timeout=15)
            raise RuntimeError("the websocket clients could not connect") from self.failure
        return self

    def __exit__(self, *exc_info) -> None:
        self.thread.join(timeout=15)
        if self.failure is not None:
            raise self.failure
        if self.thread.is_alive():
            raise TimeoutError("websocket clients did not get every event")


class DeltaListeners(Listeners):
    """The same clients, recording (piece, received at) for every word of agent_delta text."""

    async def _listen(self, mine: list[Any]) -> None:
        async with connect(self.url, proxy=None, compression=None) as socket:
            await asyncio.to_thread(self.connected.wait)
            async for raw in socket:
                received = time.monotonic()
                delta = json.loads(raw).get("agent_delta")
                for piece in (delta or {}).get("text", "").split():
                    if piece == "end":
                        return
                    mine.append((piece, received))


def run(org, run_id) -> None:
    ApiToken.objects.filter(organization=org, service_account="bench-live").delete()
    _, raw_token = ApiToken.issue(org, Role.VIEWER, service_account="bench-live")
    after = Run.objects.values_list("last_seq", flat=True).get(pk=run_id)
    port = free_port()
    command = [
        *(sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)),
        *("-v", "0", "config.asgi:application"),
    ]
    committed: list[float] = []  # the bench is the run's only writer: event i has seq after+1+i
    with serving(command, port, SERVER_ENV):
        url = f"ws://127.0.0.1:{port}/ws/runs/{run_id}/?token={raw_token}&after={after}"
        progress(f"daphne: {CLIENTS} websocket clients, {EVENTS} events appended")
        with Listeners(url) as listeners:
            for _ in range(EVENTS):
                sent_at = time.time()
                append_now(run_id, "bench_ping", "", sent_at=sent_at)
                committed.append(time.time())
                time.sleep(random.uniform(*GAP_S))
            append_now(run_id, "bench_done", "")
    # From commit (append_now returned) to a client, as the target is set; the figure with
    # append_now's own transaction (sent_at is taken before it) comes along.
    latencies = [
        (received - committed[seq - after - 1]) * 1000
        for mine in listeners.samples
        for seq, _, received in mine
    ]
    with_transaction = [latency * 1000 for mine in listeners.samples for _, latency, _ in mine]
    complete = all(len(mine) == EVENTS for mine in listeners.samples)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    extra = {
        "clients": CLIENTS,
        "events": EVENTS,
        "all_delivered": complete,
        "with_transaction_ms_p50": round(percentile(with_transaction, 50), 2),
        "with_transaction_ms_p99": round(percentile(with_transaction, 99), 2),
    }
    report("ws_event_latency_p50", p50, "ms", "< 10", complete and p50 < 10, **extra)
    report("ws_event_latency_p99", p99, "ms", "< 25", complete and p99 < 25, **extra)


def run_deltas(org, run_id) -> None:
    """From `sink(turn, text)` in this process to the clients: the sink, the notifier's loop,
    the Redis channel layer, the consumer. The provider's own first byte is the engine's part."""
    ApiToken.objects.filter(organization=org, service_account="bench-live").delete()
    _, raw_token = ApiToken.issue(org, Role.VIEWER, service_account="bench-live")
    port = free_port()
    command = [
        *(sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)),
        *("-v", "0", "config.asgi:application"),
    ]
    handed: dict[str, float] = {}
    with serving(command, port, SERVER_ENV):
        url = f"ws://127.0.0.1:{port}/ws/runs/{run_id}/?token={raw_token}&after=999999999"
        progress(f"daphne: {CLIENTS} websocket clients, {DELTAS} deltas at once, {DELTAS} streamed")
        with DeltaListeners(url) as listeners:
            sink = DeltaSink("bench", partial(publish_delta, run_id), Redactor(), later=later)
            for turn, prefix in ((1, "d"), (2, "s")):
                for n in range(DELTAS):
                    piece = f"{prefix}{n}"
                    handed[piece] = time.monotonic()
                    sink(turn, f"{piece} ")
                    time.sleep(random.uniform(*DELTA_GAP_S) if turn == 1 else STREAM_GAP_S)
            sink(3, "end")
            sink.close()
    complete = all(len(mine) == 2 * DELTAS for mine in listeners.samples)
    for prefix, name, target in (
        ("d", "ws_delta_latency", True),
        ("s", "ws_streamed_delta", False),
    ):
        latencies = [
            (received - handed[piece]) * 1000
            for mine in listeners.samples
            for piece, received in mine
            if piece.startswith(prefix)
        ]
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        extra: dict[str, Any] = {"clients": CLIENTS, "deltas": DELTAS, "all_delivered": complete}
        if target:
            report(f"{name}_p50", p50, "ms", "< 150", complete and p50 < 150, **extra)
            report(f"{name}_p99", p99, "ms", "< 300", complete and p99 < 300, **extra)
        else:  # a piece may wait out the interval for its frame: by design, no target
            extra["gap_ms"] = STREAM_GAP_S * 1000
            report(f"{name}_latency_p50", p50, "ms", None, None, **extra)
            report(f"{name}_latency_p99", p99, "ms", None, None, **extra)
