"""The benchmark's yardstick: a plain DRF runs list serving the same page of the same rows as
the API's runs list, mounted only by the benchmark's settings, and the wrk report read right."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from bench.api import ENDPOINTS, production_web_command
from bench.common import parse_wrk
from orchestrator.models import OrchestrationVersion
from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run
from tests.api.helpers import two_step

PLAIN = ENDPOINTS["plain_drf_list"]


def make_runs(org, count: int) -> list[Run]:
    flow = create_orchestration(org, two_step(name=f"Flow of {org.slug}"))
    version = OrchestrationVersion.objects.get(orchestration=flow)
    now = timezone.now()
    runs = []
    for index in range(count):
        run = Run.objects.create(
            organization=org,
            orchestration=flow,
            orchestration_version=version,
            version=1,
            status="succeeded",
            trigger_kind="api",
            input={"n": index},
        )
        Run.objects.filter(pk=run.pk).update(created_at=now - timedelta(seconds=index))
        runs.append(run)
    return runs


@pytest.mark.django_db
def test_plain_list_serves_the_same_page_of_runs_as_the_api(settings, org, other_org, api):
    settings.ROOT_URLCONF = "bench.urls"
    make_runs(org, 55)
    make_runs(other_org, 3)
    client = api("viewer")

    ours = client.get(ENDPOINTS["runs_list"])
    plain = client.get(PLAIN)

    assert ours.status_code == plain.status_code == 200
    assert len(ours.json()["items"]) == 50
    assert [run["id"] for run in plain.json()["results"]] == [
        run["id"] for run in ours.json()["items"]
    ]


@pytest.mark.django_db
def test_plain_list_needs_the_api_token(settings, org):
    settings.ROOT_URLCONF = "bench.urls"
    make_runs(org, 1)
    anonymous = APIClient().get(PLAIN)
    wrong = APIClient(HTTP_AUTHORIZATION="Bearer not-a-token").get(PLAIN)

    assert anonymous.status_code == 401
    assert wrong.status_code == 401


@pytest.mark.django_db
def test_product_urls_do_not_serve_the_plain_list(org, api):
    make_runs(org, 1)

    assert api("viewer").get(PLAIN).status_code == 404


def test_bench_serves_with_procfile_production_web_line():
    command = production_web_command()

    assert command[:2] == ["sh", "-c"]
    assert "gunicorn config.wsgi" in command[2]
    assert command[2].startswith("exec env DB_CONN_MAX_AGE=")


WRK_REPORT = """Running 15s test @ http://127.0.0.1:8000/api/v1/runs
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    48.52ms   10.21ms   1.20s    90.00%
    Req/Sec   165.10     20.00   200.00     70.00%
  Latency Distribution
     50%  850.00us
     75%   50.00ms
     90%   60.00ms
     99%    1.20s
  4953 requests in 15.00s, 12.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 0
  Non-2xx or 3xx responses: 7
Requests/sec:    330.15
Transfer/sec:      0.80MB
"""


def test_wrk_report_is_read_in_milliseconds_whatever_the_unit():
    figures = parse_wrk(WRK_REPORT)

    assert figures["requests_per_s"] == 330.15
    assert figures["p50_ms"] == pytest.approx(0.85)
    assert figures["p99_ms"] == 1200.0
    assert figures["requests"] == 4953
    assert figures["errors"] == 7
    assert figures["socket_errors"] == "connect 0, read 2, write 0, timeout 0"
