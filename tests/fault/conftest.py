"""Fault tests: real workers killed at random, duplicate deliveries, restarts, broker flushes,
two beats. CI runs short counts; SOAK=1 runs the full ones (make soak).

Timing in these tests: a claimed step's lease is the node's timeout_s + STEP_LEASE_GRACE_S
(3 + 2 s here; 300 + 30 s with the defaults: a normalized node always has a timeout_s, so
STEP_DEFAULT_LEASE_S, set small here too, only applies to nodes without one), and the test
process plays beat, calling the reaper every REAP_EVERY_S. Pending steps and queued runs whose
message was lost with a killed worker are sent again once they are STALE_S old (30 s in the
product; the tests shorten it like the lease, so that a soak is minutes, not hours)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fault.chaos import FIGURES, SOAK, Sink
from tests.worker.conftest import database_url, purge_broker

LEASE_S = 3
GRACE_S = 2
REAP_EVERY_S = 1.0
STALE_S = LEASE_S + GRACE_S


@pytest.fixture
def fault_env(transactional_db, settings, monkeypatch):
    """The environment of a worker process on the test database, with short leases."""
    import os

    from runs.services import timers

    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "VAR_DIR": str(settings.VAR_DIR),
        "HTTP_ALLOWED_NETWORKS": "127.0.0.0/8",
        "STEP_LEASE_GRACE_S": str(GRACE_S),
        "STEP_DEFAULT_LEASE_S": str(LEASE_S),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.STEP_LEASE_GRACE_S = GRACE_S
    settings.STEP_DEFAULT_LEASE_S = LEASE_S
    monkeypatch.setattr(timers, "STALE_PENDING", timedelta(seconds=STALE_S))
    monkeypatch.setattr(timers, "STALE_QUEUED", timedelta(seconds=STALE_S))
    purge_broker()
    yield env
    purge_broker()


@pytest.fixture
def sink():
    server = Sink(max_pause_s=0.05, slow_s=15)
    yield server
    server.stop()


def pytest_terminal_summary(terminalreporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section(f"reliability figures ({'soak' if SOAK else 'CI counts'})")
    for line in FIGURES:
        figures = ", ".join(
            f"{k}={v}" for k, v in line.items() if k not in ("item", "backend", "soak")
        )
        terminalreporter.write_line(f"{line['item']} [{line['backend']}]: {figures}")
