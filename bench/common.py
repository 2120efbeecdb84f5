"""What every benchmark module shares: the JSON line per figure, progress on stderr, waiting,
percentiles and the servers started as subprocesses."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def quiet_client_logs() -> None:
    """A bench's requests would log a line each. Called by each bench's main, never at import:
    the tests import bench modules, and their log tests read httpx's lines."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # the model SDKs' client


def report(name: str, value: float, unit: str, target: str | None, ok: bool | None, **extra):
    """One figure on stdout. `target` and `ok` are None for a figure reported without a target."""
    print(
        json.dumps(
            {"name": name, "value": round(value, 3), "unit": unit, "target": target, "ok": ok}
            | extra
        ),
        flush=True,
    )


STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"bench [{time.monotonic() - STARTED:5.0f} s] {message}", file=sys.stderr, flush=True)


def wait(predicate: Callable[[], bool], timeout: float = 300.0, pause: float = 0.002) -> float:
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout:
            raise TimeoutError("benchmark workload did not finish")
        time.sleep(pause)
    return time.perf_counter() - started


def percentile(samples: Sequence[float], pct: int) -> float:
    """Inclusive percentile (pct from 1 to 99) of at least two samples."""
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def cpu_seconds(session: int) -> float | None:
    """CPU time used so far by every process of the server's session (Linux /proc), with the
    children they reaped: gunicorn replaces a worker after --max-requests, and the old one's
    time would otherwise leave the sum (a round's CPU per request came out negative). Unlike
    req/s, CPU per request barely moves when other work shares the machine."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    ticks = 0
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # Fields after the command name: state ppid pgrp session ... utime(11) stime(12)
            # cutime(13) cstime(14), the last two of reaped children.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:
            ticks += sum(int(field) for field in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNITS[unit]


def parse_wrk(out: str) -> dict:
    """The figures of `wrk --latency`'s report: req/s, p50 and p99 in ms, and what failed."""
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s))\s*$", out, re.MULTILINE))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(percentiles["50"]),
        "p99_ms": _ms(percentiles["99"]),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "errors": int(bad.group(1)) if bad else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def wrk(url: str, headers: dict[str, str], clients: int, duration: float) -> dict:
    """`clients` keep-alive connections on 2 threads for `duration` seconds (wrk, in C: unlike
    Python threads, it is not the ceiling of what it measures)."""
    # A 30 s timeout: wrk's 2 s default drops the slow answers from the figures instead.
    command = ["wrk", "--latency", "--timeout", "30s", "-t", "2", "-c", str(clients)]
    command += ["-d", f"{duration:g}s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=duration + 60
    ).stdout
    return parse_wrk(out)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the main process, which stops its workers (a Celery worker finishes the tasks
    it holds: its pool killed by a group-wide signal would hand them back to the queue, for the
    next workload to run); SIGKILL to the whole group if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def serving(command: list[str], port: int, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """Start a server in its own process group; once /healthz answers, yield its base URL and
    its process id (the process group's, for cpu_seconds)."""
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=sys.stderr,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[2]} exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1, trust_env=False).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command[2]} did not start serving")
            time.sleep(0.1)
        yield base, process.pid
    finally:
        stop(process)


def children_rss_kb(pid: int) -> dict[int, int]:
    """Resident memory of the direct children of `pid` (a Celery worker's pool), from /proc."""
    found = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                found[int(child)] = int(line.split()[1])
    return found


class _Instant(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The headers and the body go out as two writes: with Nagle's algorithm the second waits for
    # the client's delayed ACK (measured: 46 ms a request on a kept-alive connection, 1.2 without).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def instant_server() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers every GET at once, in a thread of this process:
    what `http` steps and their plain Celery counterpart call. Yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Instant)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
