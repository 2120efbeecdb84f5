"""Serving benchmark: the same requests answered by daphne, uvicorn (2 workers) and gunicorn
(2 sync workers), on PostgreSQL and Redis. Prints one JSON line per server and endpoint, then a
table on stderr.

    make bench-serving      (or: python -m bench.serving, with DATABASE_URL and REDIS_URL set)
    python -m bench.serving --servers daphne gunicorn --duration 5 --rounds 3

Endpoints: `/healthz` (no database) and `GET /api/v1/orchestrations` (a bearer token, a page of
the organization's ~100 orchestrations). Load: wrk when installed (`apt-get install wrk`), else
Python threads on keep-alive connections; 16 concurrent clients for 10 s by default, after a
short warm-up. The load generator shares the CPU with the server, as it did for DESIGN.md's
figures: compare servers within one run. On a busy machine req/s mostly measures each server's
share of the CPU; `cpu ms` (the server's CPU time per answered request) still compares them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "false")

import django

django.setup()

from django.core.management import call_command  # noqa: E402

from bench.common import cpu_seconds, quiet_client_logs, wrk  # noqa: E402
from core.choices import Role  # noqa: E402
from orchestrator.models import ApiToken, Orchestration, Organization  # noqa: E402
from orchestrator.services.orchestrations import create_orchestration  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ORCHESTRATIONS = 100
WARM_UP_S = 2.0


def servers(port: int) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Command line and extra environment of each server."""
    address = f"127.0.0.1:{port}"
    gunicorn = [str(BIN / "gunicorn"), "config.wsgi", "--workers", "2", "--bind", address]
    return {
        "daphne": (
            [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
            {},
        ),
        "uvicorn": (
            [
                *(str(BIN / "uvicorn"), "config.asgi:application", "--workers", "2"),
                *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
                *("--lifespan", "off", "--log-level", "warning"),
            ],
            {},
        ),
        "gunicorn": (gunicorn, {}),
        # Sync workers can keep their database connection between requests; ASGI servers
        # cannot (Django opens one per request there), so this row has no ASGI counterpart.
        "gunicorn-conn-max-age": (gunicorn, {"DB_CONN_MAX_AGE": "60"}),
    }


def seed() -> str:
    """Migrate, make sure the organization has its orchestrations, and return a fresh token."""
    call_command("migrate", "--noinput", verbosity=0)
    org, _ = Organization.objects.get_or_create(slug="bench-serving", name="Bench serving")
    have = Orchestration.objects.filter(organization=org).count()
    for number in range(have, ORCHESTRATIONS):
        definition = {
            "nodes": [
                {"id": "draft", "type": "transform", "config": {"output": "{{ input }}"}},
                {"id": "shape", "type": "transform", "config": {"output": "{{ draft }}"}},
            ],
            "edges": [{"source": "draft", "target": "shape"}],
        }
        create_orchestration(
            org,
            {"name": f"Serving {number:03d}", "definition": definition, "status": "active"},
        )
    ApiToken.objects.filter(organization=org, service_account="bench-serving").delete()
    _, raw = ApiToken.issue(org, Role.VIEWER, service_account="bench-serving")
    return raw


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], extra_env: dict[str, str], base: str) -> subprocess.Popen:
    env = {
        **os.environ,
        **extra_env,
        # The benchmark measures serving, not the rate limit (6000/min by default).
        "THROTTLE_USER": "100000000/min",
        "THROTTLE_ANON": "100000000/min",
    }
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{command[0]} exited: {process.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"{command[0]} did not answer /healthz within 60 s")
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- load generators -----------------------------------------------------------------------


def threads(url: str, headers: dict[str, str], clients: int, duration: float) -> dict:
    """One thread per client, each on its own keep-alive connection (reopened when a server
    closes it, as gunicorn's sync workers do after every response)."""
    parsed = urllib.request.urlparse(url)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    begin = threading.Barrier(clients + 1)
    deadline = 0.0

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        begin.wait()
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                connection.request("GET", parsed.path, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                connection.close()
                ok = False
            latencies[index].append((time.perf_counter() - started) * 1000)
            errors[index] += not ok
        connection.close()

    workers = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for worker in workers:
        worker.start()
    deadline = time.perf_counter() + duration
    begin.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    every = sorted(value for per_client in latencies for value in per_client)
    cut = statistics.quantiles(every, n=100) if len(every) > 1 else every * 99
    return {
        "requests_per_s": len(every) / elapsed,
        "p50_ms": cut[49],
        "p99_ms": cut[98],
        "requests": len(every),
        "errors": sum(errors),
        "socket_errors": "",
    }


def measure(load, process, url: str, headers: dict[str, str], args) -> dict:
    load(url, headers, args.clients, WARM_UP_S)
    cpu_before = cpu_seconds(process.pid)
    figures = load(url, headers, args.clients, args.duration)
    cpu_after = cpu_seconds(process.pid)
    if cpu_before is not None and figures["requests"]:
        cpu_ms = (cpu_after - cpu_before) * 1000 / figures["requests"]
        figures["server_cpu_ms_per_request"] = cpu_ms
    return figures


def summary(server: str, endpoint: str, rounds: list[dict], args, load_name: str) -> dict:
    """The median of each figure over the rounds (all of them are kept for req/s)."""
    keys = ["requests_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_request"]
    row = {"server": server, "endpoint": endpoint}
    for key in keys:
        values = [figures[key] for figures in rounds if key in figures]
        if values:
            row[key] = round(statistics.median(values), 2)
    row["requests_per_s_each_round"] = [round(f["requests_per_s"], 1) for f in rounds]
    row["errors"] = sum(figures["errors"] for figures in rounds)
    row["socket_errors"] = "; ".join(f["socket_errors"] for f in rounds if f["socket_errors"])
    row.update(clients=args.clients, duration_s=args.duration, load=load_name)
    return row


def main() -> None:
    quiet_client_logs()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = list(servers(0))
    parser.add_argument("--servers", nargs="+", choices=names, default=names)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per figure")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every server this many times, in turn, and report medians: on a shared "
        "machine, load that comes and goes then hits every server alike",
    )
    parser.add_argument("--load", choices=["wrk", "threads"], default=None)
    args = parser.parse_args()
    load_name = args.load or ("wrk" if shutil.which("wrk") else "threads")
    load = wrk if load_name == "wrk" else threads

    token = seed()
    endpoints = {
        "/healthz": {},
        "/api/v1/orchestrations": {"Authorization": f"Bearer {token}"},
    }
    # All servers run side by side (an idle one costs nothing) and take the load in turn.
    running: dict[str, tuple[subprocess.Popen, str]] = {}
    results: dict[tuple[str, str], list[dict]] = {}
    try:
        for name in args.servers:
            port = free_port()
            command, extra_env = servers(port)[name]
            base = f"http://127.0.0.1:{port}"
            running[name] = (start(command, extra_env, base), base)
        for _ in range(args.rounds):
            for name, (process, base) in running.items():
                for path, headers in endpoints.items():
                    figures = measure(load, process, base + path, headers, args)
                    results.setdefault((name, path), []).append(figures)
    finally:
        for process, _ in running.values():
            stop(process)

    rows = [
        summary(name, path, rounds, args, load_name) for (name, path), rounds in results.items()
    ]
    for row in rows:
        print(json.dumps(row), flush=True)
    header = f"{'server':<24}{'endpoint':<26}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'cpu ms':>9}"
    print(f"\n{header}", file=sys.stderr)
    for row in rows:
        cpu = row.get("server_cpu_ms_per_request")
        print(
            f"{row['server']:<24}{row['endpoint']:<26}{row['requests_per_s']:>9.0f}"
            f"{row['p50_ms']:>9.1f}{row['p99_ms']:>9.1f}"
            + (f"{cpu:>9.2f}" if cpu is not None else f"{'-':>9}")
            + (f"  errors: {row['errors']}" if row["errors"] else ""),
            file=sys.stderr,
        )
    print(
        "cpu ms: CPU time of the server's processes per answered request (database excluded)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
