"""Benchmarks on PostgreSQL and Redis with a real worker and real servers. Prints one JSON line
per figure on stdout, `{"name", "value", "unit", "target", "ok"}` (plus context), progress on
stderr.

    make bench        (or: python -m bench.engine, with DATABASE_URL and REDIS_URL set)

1. the engine next to plain Celery doing the same workloads: step overhead, fan-out, steps/s;
   then the same for steps that run on workers (`http` against a local server that answers at
   once, and `builtin/echo` agents), next to a Celery chain and a group with its chord;
2. runs/s of small runs end to end, and the worker pool's memory after run 100 and run 1,000;
3. the runs list under load next to a plain DRF list of the same rows (wrk, Procfile.production's
   web server), a page's time in process, and the lists' query count per page (bench.api);
4. live trace latency, from an appended event to websocket clients, and from a piece of a
   model's streamed answer handed to a step's delta sink to the clients' agent_delta frames
   (bench.live).
5. an agent step's cost per model call and its first streamed delta, engine side (bench.agents).

The machine is noisy (figures move up to 2x between runs): compare within one run only.
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

import redis  # noqa: E402
from celery import chain, chord, group  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Max, Min  # noqa: E402

from bench import agents, api, live  # noqa: E402
from bench.common import (  # noqa: E402
    ROOT,
    children_rss_kb,
    instant_server,
    progress,
    quiet_client_logs,
    report,
    stop,
    wait,
)
from bench.tasks import count, echo, fetch, noop, stamp  # noqa: E402
from orchestrator.models import Organization  # noqa: E402
from orchestrator.services.orchestrations import create_orchestration  # noqa: E402
from runs.engine import RUN_TERMINAL  # noqa: E402
from runs.models import Run  # noqa: E402
from runs.services import lifecycle  # noqa: E402

REPEATS = 3
THROUGHPUT_RUNS = 200
SMALL_RUNS = 1000  # of 3 transforms: runs/s, and worker memory after run 100 and this one
MEMORY_BASELINE_RUN = 100
FIRING_THREADS = 4  # as API clients would; each fires its own orchestration
WORKER_STEPS = 100  # the chain's length and the fan-out's width of steps that run on workers
WORKER_STEP_RATIO = 0.5  # a chained worker step costs at most this much of a Celery chain step


def start_worker(concurrency: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--loglevel",
            "WARNING",
            "--concurrency",
            str(concurrency),
            "--include",
            "bench.tasks",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        # 127.0.0.1 for the `http` steps' local server, refused by default.
        env={**os.environ, "DB_CONN_MAX_AGE": "300", "HTTP_ALLOWED_NETWORKS": "127.0.0.1/32"},
        stdout=sys.stderr,  # the banner: stdout carries only the figures
        start_new_session=True,
    )


def flow(org, name: str, nodes: list, edges: list):
    return create_orchestration(
        org, {"name": name, "status": "active", "definition": {"nodes": nodes, "edges": edges}}
    )


def transform(node_id: str) -> dict:
    return {"id": node_id, "type": "transform", "config": {"output": node_id}}


def timed_run(orchestration) -> float:
    started = time.perf_counter()
    run, _ = lifecycle.fire(orchestration, {})
    wait(lambda: Run.objects.filter(pk=run.pk, status="succeeded").exists())
    elapsed = time.perf_counter() - started
    status = Run.objects.values_list("status", flat=True).get(pk=run.pk)
    assert status == "succeeded", status
    return elapsed


def celery_chain(length: int, store: redis.Redis) -> float:
    key = f"bench:{uuid.uuid4()}"
    started = time.perf_counter()
    chain(*[noop.si(i) for i in range(length)], count.si(key)).apply_async()
    wait(lambda: store.get(key) is not None)
    return time.perf_counter() - started


def celery_fan_out(width: int, store: redis.Redis) -> float:
    key = f"bench:{uuid.uuid4()}"
    started = time.perf_counter()
    for _ in range(width):
        count.delay(key)
    wait(lambda: int(store.get(key) or 0) >= width)
    return time.perf_counter() - started


def celery_chord(signatures: list, store: redis.Redis) -> float:
    """A group and its chord: the callback runs once every task of the group has."""
    key = f"bench:{uuid.uuid4()}"
    started = time.perf_counter()
    chord(group(signatures), count.si(key)).apply_async()
    wait(lambda: store.get(key) is not None)
    return time.perf_counter() - started


def celery_chain_of(signatures: list, store: redis.Redis) -> float:
    key = f"bench:{uuid.uuid4()}"
    started = time.perf_counter()
    chain(*signatures, count.si(key)).apply_async()
    wait(lambda: store.get(key) is not None)
    return time.perf_counter() - started


def worker_steps(org, tag: str, store: redis.Redis, url: str) -> None:
    """Steps that run on workers (each a Celery task that claims the step, runs the node outside
    any transaction and records the outcome) next to plain Celery tasks doing the same work: a
    chain of WORKER_STEPS against a Celery chain, a fan-out and join of WORKER_STEPS against a
    Celery group of as many with its chord."""
    kinds = {
        "http": (
            lambda node_id: {"id": node_id, "type": "http", "config": {"url": f"{url}/{node_id}"}},
            lambda index: fetch.si(f"{url}/t{index}"),
        ),
        "echo_agent": (
            lambda node_id: {
                "id": node_id,
                "type": "agent",
                "config": {"agent": {"model": "builtin/echo"}, "prompt": f"step {node_id}"},
            },
            echo.si,
        ),
    }
    ids = [f"w{i}" for i in range(WORKER_STEPS)]
    worker = start_worker(2)
    try:
        # For scale: a Celery chain step that does nothing at all.
        celery_chain_of([noop.si(i) for i in range(10)], store)
        noop_step = (
            statistics.median(
                celery_chain_of([noop.si(i) for i in range(WORKER_STEPS)], store)
                for _ in range(REPEATS)
            )
            / WORKER_STEPS
            * 1000
        )
        for kind, (node, task) in kinds.items():
            chained = flow(
                org,
                f"{kind}-chain-{tag}",
                [node(n) for n in ids],
                [{"source": a, "target": b} for a, b in itertools.pairwise(ids)],
            )
            fanned = flow(
                org,
                f"{kind}-fan-{tag}",
                [transform("start"), *map(node, ids), transform("join")],
                [{"source": "start", "target": n} for n in ids]
                + [{"source": n, "target": "join"} for n in ids],
            )
            warm = flow(org, f"{kind}-warm-{tag}", [node("w")], [])
            timed_run(warm)  # warm-up: the node's imports in both pool processes
            timed_run(warm)
            celery_chain_of([task(i) for i in range(10)], store)

            engine_chain = statistics.median(timed_run(chained) for _ in range(REPEATS))
            plain_chain = statistics.median(
                celery_chain_of([task(i) for i in range(WORKER_STEPS)], store)
                for _ in range(REPEATS)
            )
            per_step, plain_step = (
                engine_chain / WORKER_STEPS * 1000,
                plain_chain / WORKER_STEPS * 1000,
            )
            report(
                f"worker_step_overhead_{kind}",
                per_step,
                "ms/step",
                f"<= {WORKER_STEP_RATIO}x a Celery chain step ({plain_step:.2f} ms)",
                per_step <= WORKER_STEP_RATIO * plain_step,
                celery_chain_ms_per_step=round(plain_step, 3),
                celery_noop_chain_ms_per_step=round(noop_step, 3),
                ratio=round(per_step / plain_step, 2),
                chain_length=WORKER_STEPS,
            )

            engine_fan = statistics.median(timed_run(fanned) for _ in range(REPEATS))
            plain_fan = statistics.median(
                celery_chord([task(i) for i in range(WORKER_STEPS)], store) for _ in range(REPEATS)
            )
            report(
                f"worker_fan_out_{WORKER_STEPS}_and_join_{kind}",
                engine_fan,
                "s",
                f"<= 1.0x a Celery group of {WORKER_STEPS} and its chord ({plain_fan:.3f} s)",
                engine_fan <= plain_fan,
                celery_group_and_chord_s=round(plain_fan, 3),
                ratio=round(engine_fan / plain_fan, 2),
            )
    finally:
        stop(worker)


def fire_and_finish(orchestrations: list, how_many: int) -> float:
    """Fire runs from one thread per orchestration while the worker runs (fires of one
    orchestration take turns on its row lock); seconds from the first fire to the last finish."""

    def fire(orchestration, count: int) -> list:
        try:
            return [lifecycle.fire(orchestration, {})[0].pk for _ in range(count)]
        finally:
            connection.close()

    share = how_many // len(orchestrations)
    begun = time.time()
    with ThreadPoolExecutor(len(orchestrations)) as pool:
        runs = [
            pk
            for batch in pool.map(fire, orchestrations, [share] * len(orchestrations))
            for pk in batch
        ]
    wait(
        lambda: Run.objects.filter(pk__in=runs, status__in=RUN_TERMINAL).count() == len(runs),
        pause=0.05,
    )
    statuses = set(Run.objects.filter(pk__in=runs).values_list("status", flat=True))
    assert statuses == {"succeeded"}, statuses
    last = Run.objects.filter(pk__in=runs).aggregate(Max("finished_at"))["finished_at__max"]
    return last.timestamp() - begun


def small_runs(orchestrations: list) -> None:
    """Runs/s end to end, and the pool's memory after run 100 and after run 1,000."""
    worker = start_worker(2)
    try:
        fire_and_finish(orchestrations, MEMORY_BASELINE_RUN)
        baseline = children_rss_kb(worker.pid)
        progress(f"pool RSS after run {MEMORY_BASELINE_RUN}: {baseline} kB")
        rest = SMALL_RUNS - MEMORY_BASELINE_RUN
        elapsed = fire_and_finish(orchestrations, rest)
        after = children_rss_kb(worker.pid)
        progress(f"pool RSS after run {SMALL_RUNS}: {after} kB")
    finally:
        stop(worker)
    report(
        "runs_per_second_3_step_runs",
        rest / elapsed,
        "runs/s",
        None,
        None,
        runs=rest,
        firing_threads=len(orchestrations),
        note="fired while the worker runs; first fire to last finish",
    )
    growth = (sum(after.values()) - sum(baseline.values())) / sum(baseline.values()) * 100
    report(
        "worker_pool_rss_growth",
        growth,
        "%",
        "< 10",
        growth < 10,
        rss_kb_after_run_100=sum(baseline.values()),
        rss_kb_after_run_1000=sum(after.values()),
        pool_processes=len(after),
    )


def main() -> None:
    quiet_client_logs()
    if not settings.REDIS_URL or "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        sys.exit("bench runs on PostgreSQL and Redis: set DATABASE_URL and REDIS_URL")
    call_command("migrate", verbosity=0)
    store = redis.Redis.from_url(settings.REDIS_URL)
    org, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    tag = uuid.uuid4().hex[:6]
    chain_ids = [f"s{i}" for i in range(200)]
    chain_flow = flow(
        org,
        f"chain-{tag}",
        [transform(n) for n in chain_ids],
        [{"source": a, "target": b} for a, b in itertools.pairwise(chain_ids)],
    )
    fan_ids = [f"b{i}" for i in range(100)]
    fan_flow = flow(
        org,
        f"fan-{tag}",
        [transform("start"), *map(transform, fan_ids), transform("join")],
        [{"source": "start", "target": n} for n in fan_ids]
        + [{"source": n, "target": "join"} for n in fan_ids],
    )
    small_flows = [
        flow(
            org,
            f"small-{tag}-{index}",
            [transform(n) for n in ("a", "b", "c")],
            [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}],
        )
        for index in range(FIRING_THREADS)
    ]
    ten_ids = [f"t{i}" for i in range(10)]
    ten_flow = flow(
        org,
        f"ten-{tag}",
        [transform(n) for n in ten_ids],
        [{"source": a, "target": b} for a, b in itertools.pairwise(ten_ids)],
    )

    progress("step overhead, fan-out, steps/s (engine and plain Celery)")
    worker = start_worker(2)
    try:
        timed_run(ten_flow)  # warm-up: worker imports, connections, caches
        celery_chain(10, store)

        engine_chain = statistics.median(timed_run(chain_flow) for _ in range(REPEATS))
        plain_chain = statistics.median(celery_chain(200, store) for _ in range(REPEATS))
        per_step = engine_chain / 200 * 1000
        report(
            "engine_step_overhead",
            per_step,
            "ms/step",
            "<= 2",
            per_step <= 2,
            celery_chain_ms_per_step=round(plain_chain / 200 * 1000, 3),
        )

        engine_fan = statistics.median(timed_run(fan_flow) for _ in range(REPEATS))
        plain_fan = statistics.median(celery_fan_out(100, store) for _ in range(REPEATS))
        report(
            "fan_out_100_and_join",
            engine_fan,
            "s",
            "< 0.5",
            engine_fan < 0.5,
            celery_group_of_100_s=round(plain_fan, 3),
        )

        # Throughput: queue the work with no worker running, then time how fast 2 worker
        # processes drain it (first start to last finish), for the engine and plain Celery.
        stop(worker)
        runs = [lifecycle.fire(ten_flow, {})[0].pk for _ in range(THROUGHPUT_RUNS)]
        worker = start_worker(2)
        wait(
            lambda: Run.objects.filter(pk__in=runs, status="succeeded").count() == len(runs),
            pause=0.05,
        )
        window = Run.objects.filter(pk__in=runs).aggregate(Min("started_at"), Max("finished_at"))
        elapsed = (window["finished_at__max"] - window["started_at__min"]).total_seconds()
        engine_rate = len(runs) * 10 / elapsed
        stop(worker)
        key = f"bench:{uuid.uuid4()}"
        for _ in range(THROUGHPUT_RUNS * 10):
            stamp.delay(key)
        worker = start_worker(2)
        wait(lambda: int(store.get(key) or 0) >= THROUGHPUT_RUNS * 10, pause=0.05)
        plain_rate = (
            THROUGHPUT_RUNS
            * 10
            / (float(store.get(f"{key}:last")) - float(store.get(f"{key}:first")))
        )
        report(
            "steps_per_second_10_step_flows",
            engine_rate,
            "steps/s",
            ">= 2x plain Celery no-op tasks/s",
            engine_rate >= 2 * plain_rate,
            celery_noop_tasks_per_s=round(plain_rate, 1),
        )
    finally:
        stop(worker)

    progress(f"worker steps: chains and fan-outs of {WORKER_STEPS} http and agent steps")
    with instant_server() as url:
        worker_steps(org, tag, store, url)
    agents.run()
    progress(f"{SMALL_RUNS} small runs")
    small_runs(small_flows)
    progress("API lists under load")
    api.run()
    progress("websocket event latency")
    live_run = Run.objects.filter(orchestration=small_flows[0]).values_list("pk", flat=True)[0]
    live.run(org, live_run)
    progress("websocket agent_delta latency")
    live.run_deltas(org, live_run)


if __name__ == "__main__":
    main()
