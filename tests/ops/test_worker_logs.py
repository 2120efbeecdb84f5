"""A real Celery worker keeps the configured log handler: Celery does not hijack the root
logger, so its lines and the steps' lines come out as JSON with the run and step ids."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from django.conf import settings

from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run
from runs.services import lifecycle
from tests.ops.conftest import ROOT, base_env, python
from tests.runs.servers import local_server
from tests.worker.conftest import database_url, purge_broker

pytestmark = pytest.mark.worker


def test_a_celery_worker_writes_json_lines_with_the_step_ids(transactional_db, org, tmp_path):
    env = base_env(
        settings.VAR_DIR,
        DATABASE_URL=database_url(),
        HTTP_ALLOWED_NETWORKS="127.0.0.0/8",
        LOG_FORMAT="json",
    )
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    purge_broker()
    log_path = tmp_path / "worker.log"
    with local_server() as upstream, log_path.open("w") as log:
        definition = {
            "nodes": [{"id": "remote", "type": "http", "config": {"url": f"{upstream.url}/a"}}],
            "edges": [],
            "inputs": [],
            "output_type": "json",
        }
        flow = create_orchestration(
            org, {"name": "Logged", "definition": definition, "status": "active"}
        )
        worker = subprocess.Popen(
            [
                *(python(), "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO"),
                *("--concurrency", "1", "--without-heartbeat", "--without-gossip"),
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            run, _ = lifecycle.fire(flow, {})
            deadline = time.monotonic() + 60
            while Run.objects.get(pk=run.pk).status != "succeeded":
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.25)
        finally:
            # The lines are written (unbuffered); no need to wait for a warm shutdown.
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
            purge_broker()

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    step_lines = [line for line in lines if line.get("step_id") == "remote"]
    assert {"httpx", "runs.services.execution"} <= {line["logger"] for line in step_lines}
    assert all(line["run_id"] == str(run.pk) for line in step_lines)
    assert any(line["logger"].startswith("celery") for line in lines), "celery's own lines"
