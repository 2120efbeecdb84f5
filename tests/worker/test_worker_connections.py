"""A worker keeps its PostgreSQL connection between tasks, and recovers when it is dropped."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection

from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run
from runs.services import lifecycle
from tests.worker.conftest import Worker, wait_until

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="counts PostgreSQL sessions"),
]

STEPS = [f"s{index}" for index in range(5)]


def sessions_opened() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def worker_backends() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return [row[0] for row in cursor.fetchall()]


def run_to_the_end(orchestration) -> None:
    run, _ = lifecycle.fire(orchestration, {})
    wait_until(lambda: Run.objects.get(pk=run.pk).status == "succeeded", timeout=30)


@pytest.fixture
def chain_of_transforms(org):
    return create_orchestration(
        org,
        {
            "name": "Chain",
            "status": "active",
            "definition": {
                "nodes": [
                    {"id": step, "type": "transform", "config": {"output": step}} for step in STEPS
                ],
                "edges": [{"source": a, "target": b} for a, b in itertools.pairwise(STEPS)],
            },
        },
    )


def test_a_worker_reuses_its_connection_across_tasks(chain_of_transforms, worker_env):
    worker = Worker({**worker_env, "DB_CONN_MAX_AGE": "300"}, concurrency=2)
    worker.start()
    try:
        run_to_the_end(chain_of_transforms)  # both pool processes may connect once
        run_to_the_end(chain_of_transforms)
        before = sessions_opened()
        for _ in range(20):
            run_to_the_end(chain_of_transforms)
        assert sessions_opened() - before == 0
    finally:
        worker.stop()


def test_a_worker_whose_connection_was_dropped_runs_the_next_task(chain_of_transforms, worker_env):
    worker = Worker({**worker_env, "DB_CONN_MAX_AGE": "300"}, concurrency=1)
    worker.start()
    try:
        run_to_the_end(chain_of_transforms)
        with connection.cursor() as cursor:
            for pid in worker_backends():
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(3):
            run_to_the_end(chain_of_transforms)
    finally:
        worker.stop()
