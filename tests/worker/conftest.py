"""A real Celery worker process on the test database and the configured broker.

The test process plays the web server (it fires runs and its transactions' on_commit hooks
publish to the broker) and beat (it calls the reaper); the worker executes the steps.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from config.celery import app as celery_app
from tests.serving import ROOT, database_url


def purge_broker() -> None:
    if settings.REDIS_URL:
        with celery_app.connection_for_write() as conn:
            conn.default_channel.queue_purge("celery")
    else:
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)


class Worker:
    def __init__(self, env: dict[str, str], concurrency: int) -> None:
        self.env = env
        self.concurrency = concurrency
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
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
                str(self.concurrency),
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children): nothing gets to clean up."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker_env(transactional_db, settings):
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "VAR_DIR": str(settings.VAR_DIR),
        "HTTP_ALLOWED_NETWORKS": "127.0.0.0/8",
        "STEP_LEASE_GRACE_S": "2",
        "PYTHONUNBUFFERED": "1",
    }
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.STEP_LEASE_GRACE_S = 2
    purge_broker()
    return env


@pytest.fixture
def worker(worker_env):
    started = Worker(worker_env, concurrency=2)
    started.start()
    yield started
    started.stop()
    purge_broker()


def wait_until(predicate, timeout: float = 60.0, *, reap: bool = False) -> None:
    """Poll until `predicate()` holds; with `reap`, also play beat's reaper every half second."""
    from runs.services import timers

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if reap:
            timers.reap()
        time.sleep(0.25)
    raise AssertionError("timed out waiting")
