"""Rate limits hold across processes: a token's requests count against one limit whichever
process serves them (gunicorn runs several workers; before, each kept its own counts in memory,
so a limit of N was N per process)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from orchestrator.throttling import TokenRateThrottle
from tests.api.test_chunked_bodies import database_url, free_port

ROOT = Path(__file__).resolve().parents[2]
URL = "/api/v1/orchestrations"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="the embedded profile serves one process"),
]


@pytest.fixture
def gunicorn(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "VAR_DIR": str(settings.VAR_DIR),
        "THROTTLE_USER": "3/min",
    }
    bind = f"127.0.0.1:{port}"
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-w", "2", "-b", bind],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", trust_env=False).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_a_token_has_one_limit_across_processes(api, gunicorn, monkeypatch):
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"user": "3/min"})
    used, fresh = api("viewer"), api("viewer")
    # This process serves three requests: the token's whole allowance.
    assert [used.get(URL).status_code for _ in range(3)] == [200, 200, 200]

    def through_server(client) -> int:
        headers = {"Authorization": f"Bearer {client.raw_token}"}
        return httpx.get(f"{gunicorn}{URL}", headers=headers, trust_env=False).status_code

    # Another process knows it: the next request is refused there too, by either worker.
    assert [through_server(used) for _ in range(4)] == [429] * 4
    assert through_server(fresh) == 200
