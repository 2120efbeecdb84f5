"""Rate limits hold across processes: a token's requests count against one limit whichever
process serves them (gunicorn runs several workers; before, each kept its own counts in memory,
so a limit of N was N per process)."""

from __future__ import annotations

import os
import sys

import httpx
import pytest
from django.conf import settings

from core.throttling import TokenRateThrottle
from tests.serving import database_url, free_port, server_process

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
        "THROTTLE_USER": "3/day",
    }
    command = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-w", "2"]
    command += ["-b", f"127.0.0.1:{port}"]
    with server_process(command, port, env, tmp_path / "gunicorn.log") as base:
        yield base


def test_a_token_has_one_limit_across_processes(api, gunicorn, monkeypatch):
    # A day's window: the limit is estimated from the current and the previous window, so a
    # minute's window turning between the requests here would let one more through.
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"user": "3/day"})
    used, fresh = api("viewer"), api("viewer")
    # This process serves three requests: the token's whole allowance.
    assert [used.get(URL).status_code for _ in range(3)] == [200, 200, 200]

    def through_server(client) -> int:
        headers = {"Authorization": f"Bearer {client.raw_token}"}
        return httpx.get(f"{gunicorn}{URL}", headers=headers, trust_env=False).status_code

    # Another process knows it: the next request is refused there too, by either worker.
    assert [through_server(used) for _ in range(4)] == [429] * 4
    assert through_server(fresh) == 200
