"""API list endpoints under load, next to /healthz on the same server, and their query counts.

The data set (100 orchestrations, 10,000 finished runs of 3 steps each) lives in its own
organization and is kept between benchmark runs: it is seeded once with bulk_create.

Import after django.setup() (bench.engine does).
"""

from __future__ import annotations

import itertools
import statistics
import sys
import threading
import time
from datetime import timedelta

import httpx
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench.common import free_port, percentile, progress, report, serving
from core.choices import Role
from orchestrator.models import (
    ApiToken,
    Orchestration,
    OrchestrationTag,
    OrchestrationVersion,
    Organization,
)
from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run, StepRun

ORCHESTRATIONS = 100
RUNS = 10_000
STEPS = ("fetch", "shape", "answer")
CLIENTS = 16
ROUNDS = 4
ROUND_S = 2.5  # per endpoint and round: the endpoints alternate, so drift hits all alike
PAGE = 50
ENDPOINTS = {
    "healthz": "/healthz",
    "runs_list": f"/api/v1/runs?limit={PAGE}",
    "orchestrations_list": f"/api/v1/orchestrations?limit={PAGE}",
}
LISTS = {"runs_list": "/api/v1/runs", "orchestrations_list": "/api/v1/orchestrations"}
SERVER_ENV = {
    "DB_CONN_MAX_AGE": "60",  # as Procfile.production runs gunicorn
    "THROTTLE_USER": "10000000/min",  # one token makes all the load here
    "LOG_LEVEL": "WARNING",
}


def seeded_organization() -> Organization:
    org = Organization.objects.filter(slug="bench-api").first()
    if (
        org is not None
        and Orchestration.objects.filter(organization=org).count() == ORCHESTRATIONS
        and Run.objects.filter(organization=org).count() == RUNS
    ):
        return org
    if org is not None:
        org.delete()
    progress(f"seeding {ORCHESTRATIONS} orchestrations and {RUNS} runs (kept for next time)")
    with transaction.atomic():
        org = Organization.objects.create(slug="bench-api", name="Bench API")
        flows = [
            create_orchestration(
                org,
                {
                    "name": f"Flow {index:03d}",
                    "status": "active",
                    "tags": ["bench", f"team-{index % 7}"],
                    "definition": {
                        "nodes": [
                            {"id": node, "type": "transform", "config": {"output": node}}
                            for node in STEPS
                        ],
                        "edges": [{"source": a, "target": b} for a, b in itertools.pairwise(STEPS)],
                    },
                },
            )
            for index in range(ORCHESTRATIONS)
        ]
        versions = {
            v.orchestration_id: v
            for v in OrchestrationVersion.objects.filter(orchestration__organization=org)
        }
        finished = timezone.now()
        started = finished - timedelta(milliseconds=40)
        for first in range(0, RUNS, 1000):
            runs = [
                Run(
                    organization=org,
                    orchestration=flows[index % ORCHESTRATIONS],
                    orchestration_version=versions[flows[index % ORCHESTRATIONS].pk],
                    version=1,
                    status="failed" if index % 20 == 0 else "succeeded",
                    trigger_kind="api",
                    input={"message": f"request {index}"},
                    output={"text": f"answer {index}"},
                    steps_completed=len(STEPS),
                    steps_total=len(STEPS),
                    last_seq=2 + 2 * len(STEPS),
                    started_at=started,
                    finished_at=finished,
                )
                for index in range(first, first + 1000)
            ]
            Run.objects.bulk_create(runs)
            StepRun.objects.bulk_create(
                StepRun(
                    run=run,
                    node_id=node,
                    node_type="transform",
                    status="succeeded",
                    input={"message": run.input["message"]},
                    output=node,
                    started_at=started,
                    finished_at=finished,
                )
                for run in runs
                for node in STEPS
            )
    return org


def queries_per_page(raw_token: str) -> None:
    """The same number of queries for a page of 10 and a page of 50: no N+1 in the lists."""
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_token}")
    for name, path in LISTS.items():
        client.get(path)  # the first use of the token writes last_used_at
        counts = {}
        for limit in (10, PAGE):
            with CaptureQueriesContext(connection) as queries:
                response = client.get(path, {"limit": limit})
            assert response.status_code == 200, response.content[:300]
            assert len(response.json()["items"]) == limit
            counts[limit] = len(queries)
        report(
            f"api_{name}_queries_per_page",
            counts[PAGE],
            "queries",
            f"same at limit=10 and limit={PAGE}",
            counts[10] == counts[PAGE],
            at_limit_10=counts[10],
        )


def in_process_ms(raw_token: str, repeats: int = 20) -> dict[str, float]:
    """Median time of one request through Django in this process, no server and no concurrency:
    what a request costs, apart from queueing."""
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_token}")
    medians = {}
    for name, path in ENDPOINTS.items():
        client.get(path)
        times = []
        for _ in range(repeats):
            begun = time.perf_counter()
            client.get(path)
            times.append((time.perf_counter() - begun) * 1000)
        medians[name] = statistics.median(times)
    return medians


def hammer(base: str, path: str, headers: dict[str, str], seconds: float) -> list[float]:
    """CLIENTS threads, each with its own keep-alive client, for `seconds`: every latency."""
    latencies: list[float] = []
    errors: list[str] = []
    start = threading.Barrier(CLIENTS + 1)
    done = threading.Event()

    def client() -> None:
        mine = []
        with httpx.Client(base_url=base, headers=headers, timeout=30, trust_env=False) as http:
            start.wait()
            while not done.is_set():
                begun = time.perf_counter()
                response = http.get(path)
                mine.append(time.perf_counter() - begun)
                if response.status_code != 200:
                    errors.append(f"{path}: {response.status_code}")
        latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    start.wait()
    time.sleep(seconds)
    done.set()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, first: {errors[0]}")
    return latencies


def list_load(raw_token: str, alone_ms: dict[str, float]) -> None:
    port = free_port()
    command = [
        *(sys.executable, "-m", "gunicorn", "config.wsgi:application"),
        *("--workers", "2", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"),
    ]
    headers = {"Authorization": f"Bearer {raw_token}"}
    with serving(command, port, SERVER_ENV) as base:
        progress(f"gunicorn (2 sync workers): {CLIENTS} clients, {ROUNDS} rounds per endpoint")
        for path in ENDPOINTS.values():  # warm-up: imports, URL resolver, connections
            hammer(base, path, headers, 0.5)
        samples: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
        seconds: dict[str, float] = dict.fromkeys(ENDPOINTS, 0.0)
        for _ in range(ROUNDS):
            for name, path in ENDPOINTS.items():
                begun = time.perf_counter()
                latencies = hammer(base, path, headers, ROUND_S)
                seconds[name] += time.perf_counter() - begun
                samples[name] += latencies
    figures = {}
    for name, latencies in samples.items():
        rate = len(latencies) / seconds[name]
        p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
        figures[name] = (rate, p99)
        report(
            f"api_{name}_throughput",
            rate,
            "req/s",
            None,
            None,
            requests=len(latencies),
            in_process_ms_per_request=round(alone_ms[name], 2),
        )
        report(f"api_{name}_latency_p50", p50, "ms", None, None)
        report(f"api_{name}_latency_p99", p99, "ms", None, None)
    health_rate, health_p99 = figures["healthz"]
    for name in LISTS:
        rate, p99 = figures[name]
        report(
            f"api_{name}_throughput_vs_healthz",
            rate / health_rate,
            "ratio",
            ">= 0.60",
            rate / health_rate >= 0.60,
        )
        report(
            f"api_{name}_p99_vs_healthz", p99 / health_p99, "ratio", "< 2.0", p99 / health_p99 < 2.0
        )


def analyze() -> None:
    """Fresh planner statistics, as autovacuum keeps them (it may be off on a bench database:
    after a bulk load the stale estimates made the runs list sort all 10,000 rows)."""
    with connection.cursor() as cursor:
        for model in (Run, StepRun, Orchestration, OrchestrationTag):
            cursor.execute(f'ANALYZE "{model._meta.db_table}"')


def run() -> None:
    org = seeded_organization()
    analyze()
    ApiToken.objects.filter(organization=org).delete()
    _, raw_token = ApiToken.issue(org, Role.VIEWER, service_account="bench")
    queries_per_page(raw_token)
    list_load(raw_token, in_process_ms(raw_token))
