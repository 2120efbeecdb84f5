"""Engine benchmarks on PostgreSQL and Redis with a real worker, next to plain Celery doing the
same workloads in the same run. Prints one JSON line per figure.

    make bench        (or: python -m bench.engine, with DATABASE_URL and REDIS_URL set)

The machine is noisy (figures move up to 2x between runs): compare within one run only.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

import redis  # noqa: E402
from celery import chain  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import Max, Min  # noqa: E402

from bench.tasks import count, noop, stamp  # noqa: E402
from orchestrator.models import Organization  # noqa: E402
from orchestrator.services.orchestrations import create_orchestration  # noqa: E402
from runs.models import Run  # noqa: E402
from runs.services import lifecycle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 3
THROUGHPUT_RUNS = 200


def report(name: str, value: float, unit: str, target: str, ok: bool | None, **extra) -> None:
    print(
        json.dumps(
            {
                "name": name,
                "value": round(value, 3),
                "unit": unit,
                "target": target,
                "meets_target": ok,
                **extra,
            }
        ),
        flush=True,
    )


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
        env={**os.environ, "DB_CONN_MAX_AGE": "300"},
        start_new_session=True,
    )


def stop_worker(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def wait(predicate, timeout: float = 300.0, pause: float = 0.002) -> float:
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout:
            raise TimeoutError("benchmark workload did not finish")
        time.sleep(pause)
    return time.perf_counter() - started


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


def main() -> None:
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
    ten_ids = [f"t{i}" for i in range(10)]
    ten_flow = flow(
        org,
        f"ten-{tag}",
        [transform(n) for n in ten_ids],
        [{"source": a, "target": b} for a, b in itertools.pairwise(ten_ids)],
    )

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
        stop_worker(worker)
        runs = [lifecycle.fire(ten_flow, {})[0].pk for _ in range(THROUGHPUT_RUNS)]
        worker = start_worker(2)
        wait(
            lambda: Run.objects.filter(pk__in=runs, status="succeeded").count() == len(runs),
            pause=0.05,
        )
        window = Run.objects.filter(pk__in=runs).aggregate(Min("started_at"), Max("finished_at"))
        elapsed = (window["finished_at__max"] - window["started_at__min"]).total_seconds()
        engine_rate = len(runs) * 10 / elapsed
        stop_worker(worker)
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
        stop_worker(worker)


if __name__ == "__main__":
    main()
