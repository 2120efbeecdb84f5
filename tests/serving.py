"""Servers the tests start as processes of their own (daphne, gunicorn, uvicorn), on the test
database, and what they need to find it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url() -> str:
    """The test database as a URL, for another process to use the rows the tests commit."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = quote(db.get("USER") or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{quote(db['NAME'])}"


@contextlib.contextmanager
def server_process(command: list[str], port: int, env: dict[str, str], log: Path) -> Iterator[str]:
    """Start `command` in a session of its own, its output in `log`; yield its base URL once
    /healthz answers 200, and stop it on the way out."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2, trust_env=False).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[2]} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def serve(log: Path, *, module: str = "daphne", **environment: str) -> Iterator[str]:
    """The project under daphne (`module` may be a wrapper taking its arguments) on the test
    database and a free port, with `environment` added to this process's; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "VAR_DIR": str(settings.VAR_DIR),
        "PYTHONUNBUFFERED": "1",
        **environment,
    }
    command = [
        *(sys.executable, "-m", module, "-b", "127.0.0.1", "-p", str(port)),
        "config.asgi:application",
    ]
    with server_process(command, port, env, log) as base:
        yield base
