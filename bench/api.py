"""The runs list under load next to a plain DRF list of the same rows on the same server (wrk on
Procfile.production's web server), the time a page takes in process, and the lists' query counts.

The data set (100 orchestrations, 10,000 finished runs of 3 steps each) lives in its own
organization and is kept between benchmark runs: it is seeded once with bulk_create.

Import after django.setup() (bench.engine does).
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from bench.common import ROOT, cpu_seconds, free_port, progress, report, serving, wrk
from bench.urls import PLAIN_RUNS_PATH
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
ROUNDS = 2
ROUND_S = 15.0  # per list and round: the lists alternate, so drift hits both alike
WARM_UP_S = 3.0
PAGE = 50
ENDPOINTS = {"runs_list": "/api/v1/runs", "plain_drf_list": f"/{PLAIN_RUNS_PATH}"}
LISTS = {"runs_list": "/api/v1/runs", "orchestrations_list": "/api/v1/orchestrations"}
SERVER_ENV = {
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


def in_process_ms(raw_token: str, path: str, repeats: int = 50) -> tuple[float, float]:
    """Median wall time and CPU time of one request through Django in this process, no server
    and no concurrency: what a page costs the server, apart from queueing. The wall time counts
    the waits on PostgreSQL and Redis; on a busy machine the CPU time moves less."""
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_token}")
    client.get(path)
    wall, cpu = [], []
    for _ in range(repeats):
        begun, begun_cpu = time.perf_counter(), time.process_time()
        response = client.get(path)
        wall.append((time.perf_counter() - begun) * 1000)
        cpu.append((time.process_time() - begun_cpu) * 1000)
        assert response.status_code == 200, response.content[:300]
    return statistics.median(wall), statistics.median(cpu)


def production_web_command() -> list[str]:
    """Procfile.production's `web` line as it is, run by a shell (which fills in its defaults)
    that then becomes the server: the benchmark serves as production does."""
    lines = (ROOT / "Procfile.production").read_text().splitlines()
    web = next(line.removeprefix("web:").strip() for line in lines if line.startswith("web:"))
    return ["sh", "-c", f"exec env {web}"]


def same_rows(base: str, headers: dict[str, str]) -> None:
    """Both lists answer the same page of the same runs: the comparison is like for like."""
    with httpx.Client(base_url=base, headers=headers, timeout=30, trust_env=False) as http:
        pages = {name: http.get(path) for name, path in ENDPOINTS.items()}
    ids = {}
    for name, response in pages.items():
        assert response.status_code == 200, (name, response.status_code, response.text[:300])
        body = response.json()
        ids[name] = [item["id"] for item in body.get("items", body.get("results", []))]
    assert len(ids["runs_list"]) == PAGE and ids["runs_list"] == ids["plain_drf_list"], ids


def list_load(raw_token: str) -> None:
    port = free_port()
    env = {
        **SERVER_ENV,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    headers = {"Authorization": f"Bearer {raw_token}"}
    with serving(production_web_command(), port, env) as (base, pid):
        same_rows(base, headers)
        progress(
            f"runs list and plain DRF list on Procfile.production's web server: wrk, {CLIENTS} "
            f"connections, {ROUNDS} rounds of {ROUND_S:g} s each, alternating"
        )
        for path in ENDPOINTS.values():  # warm-up: imports, URL resolver, connections
            wrk(base + path, headers, CLIENTS, WARM_UP_S)
        rounds: dict[str, list[dict]] = {name: [] for name in ENDPOINTS}
        for _ in range(ROUNDS):
            for name, path in ENDPOINTS.items():
                cpu_before = cpu_seconds(pid)
                figures = wrk(base + path, headers, CLIENTS, ROUND_S)
                figures["cpu_ms"] = (cpu_seconds(pid) - cpu_before) * 1000 / figures["requests"]
                if figures["errors"] or figures["socket_errors"]:
                    raise RuntimeError(f"{name}: failed requests: {figures}")
                rounds[name].append(figures)
    summary = {}
    for name, measured in rounds.items():
        rps = statistics.mean(f["requests_per_s"] for f in measured)
        p99 = statistics.mean(f["p99_ms"] for f in measured)
        summary[name] = (rps, p99)
        report(
            f"{name}_rps",
            rps,
            "req/s",
            None,
            None,
            each_round=[round(f["requests_per_s"], 1) for f in measured],
            p50_ms=round(statistics.mean(f["p50_ms"] for f in measured), 2),
            server_cpu_ms_per_request=round(statistics.mean(f["cpu_ms"] for f in measured), 2),
            requests=sum(f["requests"] for f in measured),
        )
        report(f"{name}_p99", p99, "ms", None, None, each_round=[f["p99_ms"] for f in measured])
    (ours_rps, ours_p99), (plain_rps, plain_p99) = summary["runs_list"], summary["plain_drf_list"]
    report(
        "runs_list_vs_plain_drf_rps", ours_rps / plain_rps, "ratio", ">= 1.0", ours_rps >= plain_rps
    )
    report(
        "runs_list_vs_plain_drf_p99", ours_p99 / plain_p99, "ratio", "<= 1.0", ours_p99 <= plain_p99
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
    page_ms, page_cpu_ms = in_process_ms(raw_token, ENDPOINTS["runs_list"])
    with override_settings(ROOT_URLCONF="bench.urls"):
        plain_ms, plain_cpu_ms = in_process_ms(raw_token, ENDPOINTS["plain_drf_list"])
    report(
        "runs_list_server_ms_per_page",
        page_ms,
        "ms",
        "< 5",
        page_ms < 5,
        cpu_ms=round(page_cpu_ms, 2),
        plain_drf_list_ms=round(plain_ms, 2),
        plain_drf_list_cpu_ms=round(plain_cpu_ms, 2),
        note="median of 50 requests through Django in process, no server, no concurrency",
    )
    list_load(raw_token)
