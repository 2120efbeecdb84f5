"""The pages people open most read about as many rows as they show, however many runs there are.

A year of a deployment holds 100,000 runs, a million steps and five million events (`make
bench-data` measures that). Here a few thousand runs, loaded the same way, are enough for
PostgreSQL's planner to choose as it would then: the SQL each view sends is captured and
explained (and run), and no scan of runs, steps, events or approvals may read the whole table
or skip through rows it does not show.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench import year
from core.choices import Role
from orchestrator.models import ApiToken
from runs.models import Run

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="explains PostgreSQL's query plans"
    ),
]

SCALE = year.Scale(runs=12_000, events_per_run=10, paused=20)
HOT_TABLES = {"runs_run", "runs_steprun", "runs_runevent", "approvals_approval"}
# A fifth of the runs. What a page reads is bounded by its size, not the table's: at most a page
# or, where PostgreSQL walks the newest runs of every orchestration in time order (runs are
# written in that order), the runs of the others interleaved with one orchestration's page
# (1,530 here, the same with a year of runs). An organization's runs (4,000), every run of ten
# orchestrations (the dashboard's window did that) or a whole table is over it.
MOST_ROWS_READ = SCALE.runs // 5


@pytest.fixture(scope="module")
def loaded(django_db_setup, django_db_blocker):
    """Loaded once for the module and committed, then removed: loading takes seconds."""
    with django_db_blocker.unblock():
        loaded = year.create_organizations(SCALE, prefix="plans")
        try:
            year.load(SCALE, loaded)
            yield loaded
        finally:
            # Committed rows outlive the test's transactions: whatever happened, none is left
            # for the next module to find.
            year.remove(loaded)


@pytest.fixture
def api(loaded) -> Client:
    _, raw_token = ApiToken.issue(loaded.organizations[0], Role.VIEWER, service_account="plans")
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw_token}")


@pytest.fixture
def signed_in(loaded) -> Client:
    client = Client()
    client.force_login(loaded.user)
    return client


@pytest.fixture
def finished_run(loaded) -> Run:
    return (
        Run.objects.filter(organization=loaded.organizations[0], status="succeeded")
        .order_by("-created_at")
        .first()
    )


def scans(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from scans(child)


def wasteful_scans(client: Client, path: str) -> list[str]:
    """Every scan of a hot table in the plans of the SQL this request sends that reads the
    whole table or more rows than a page holds (rows returned plus rows filtered out)."""
    client.get(path)  # a first request may write (a token's last use)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, response.content[:300]
    found = []
    for query in captured.captured_queries:
        if not query["sql"].startswith("SELECT"):
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query['sql']}")
            plan = cursor.fetchone()[0][0]["Plan"]
        for node in scans(plan):
            table = node.get("Relation Name")
            if table not in HOT_TABLES:
                continue
            read = (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node[
                "Actual Loops"
            ]
            if node["Node Type"] == "Seq Scan" or read > MOST_ROWS_READ:
                found.append(f"{node['Node Type']} on {table} read {read} rows: {query['sql']}")
    return found


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?status=failed",
        "?status=cancelled",
        "?status=paused",
        "?trigger=webhook",
        "?orchestration={flow}",
        "?orchestration={flow}&status=failed",
        "?from={month_ago}",
        "?to={month_ago}",
    ],
)
def test_the_runs_list_reads_one_page_of_runs_with_any_filter(api, loaded, query):
    month_ago = (timezone.now() - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    query = query.format(flow=loaded.orchestrations[0].pk, month_ago=month_ago)
    separator = "&" if query else "?"
    assert wasteful_scans(api, f"/api/v1/runs{query}{separator}limit=50") == []


def test_an_orchestrations_runs_read_one_page_of_runs(api, loaded):
    flow = loaded.orchestrations[1]
    assert wasteful_scans(api, f"/api/v1/orchestrations/{flow.pk}/runs?limit=50") == []


def test_a_runs_detail_and_steps_read_only_that_run(api, finished_run):
    assert wasteful_scans(api, f"/api/v1/runs/{finished_run.pk}") == []
    assert wasteful_scans(api, f"/api/v1/runs/{finished_run.pk}/steps") == []


def test_a_runs_events_after_a_seq_read_only_those_events(api, finished_run):
    assert wasteful_scans(api, f"/api/v1/runs/{finished_run.pk}/events?after=0") == []
    assert wasteful_scans(api, f"/api/v1/runs/{finished_run.pk}/events?after=5") == []


def test_the_approvals_inbox_reads_only_pending_approvals(api, signed_in):
    assert wasteful_scans(api, "/api/v1/approvals?pending=true&limit=50") == []
    assert wasteful_scans(signed_in, "/approvals/pending-count/") == []


def test_the_dashboard_reads_only_the_recent_runs_it_shows(signed_in):
    assert wasteful_scans(signed_in, "/") == []
