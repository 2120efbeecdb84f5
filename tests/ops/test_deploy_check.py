"""Production settings pass `check --deploy`, static files are served by whitenoise with DEBUG
off, and the development defaults still start. Each case runs in a fresh process, because
settings are read from the environment once, at start-up."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from django.test import Client

from tests.ops.conftest import ROOT, base_env, production_env, python
from tests.serving import free_port


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python(), "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_production_settings_pass_the_deploy_check(tmp_path):
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_without_the_https_settings_the_deploy_check_fails(tmp_path):
    env = production_env(tmp_path)
    for name in ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "BEHIND_PROXY"):
        del env[name]
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stderr


def test_a_short_secret_key_fails_the_deploy_check(tmp_path):
    env = production_env(tmp_path, SECRET_KEY="too-short")
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "security.W009" in result.stderr


@pytest.mark.django_db
def test_the_https_redirect_spares_the_health_probes(settings):
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/login/").status_code == 301
    assert client.get("/login/").headers["Location"] == "https://testserver/login/"


def test_a_forwarded_proto_header_is_ignored_unless_behind_a_proxy(settings):
    settings.SECURE_SSL_REDIRECT = True
    assert settings.SECURE_PROXY_SSL_HEADER is None  # BEHIND_PROXY is unset here
    assert Client().get("/login/", HTTP_X_FORWARDED_PROTO="https").status_code == 301
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert Client().get("/login/", HTTP_X_FORWARDED_PROTO="https").status_code != 301


def test_the_development_defaults_start_and_serve(tmp_path):
    env = base_env(tmp_path, DEBUG="true")
    check = manage(env, "check")
    assert check.returncode == 0, check.stdout + check.stderr

    port = free_port()
    server = subprocess.Popen(
        [python(), "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert _get_when_up(f"{base}/healthz", server) == (200, b"ok")
        # With DEBUG on, whitenoise serves from the source folders: no collectstatic needed.
        status, body = _get(f"{base}/static/css/app.css")
        assert status == 200 and body
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def _get_when_up(url: str, server: subprocess.Popen, timeout: float = 60) -> tuple[int, bytes]:
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise AssertionError(f"the server exited: {server.stderr.read()}")
        try:
            return _get(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# Run in a process with the production environment: GET static files through the WSGI and ASGI
# applications, as a proxy would forward them (https, the public host).
PROBE = r"""
import asyncio, json, sys
from wsgiref.util import setup_testing_defaults

from config.wsgi import application as wsgi_app
from config.asgi import application as asgi_app
from django.contrib.staticfiles.storage import staticfiles_storage

HOST, PROTO = "orchestrator.example.com", "https"


def wsgi_get(path):
    environ = {"PATH_INFO": path, "HTTP_HOST": HOST, "HTTP_X_FORWARDED_PROTO": PROTO}
    setup_testing_defaults(environ)
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = int(status.split()[0])
        seen["headers"] = {name.lower(): value for name, value in headers}

    body = b"".join(wsgi_app(environ, start_response))
    return {**seen, "length": len(body)}


async def asgi_get(path):
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "headers": [(b"host", HOST.encode()), (b"x-forwarded-proto", PROTO.encode())],
    }
    messages, requests = [], [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the client never disconnects

    async def send(message):
        messages.append(message)

    await asgi_app(scope, receive, send)
    start = messages[0]
    return {
        "status": start["status"],
        "headers": {k.decode().lower(): v.decode() for k, v in start["headers"]},
        "length": sum(len(m.get("body", b"")) for m in messages[1:]),
    }


names = sys.argv[1:]
paths = ["/static/css/app.css"] + [staticfiles_storage.url(name) for name in names]
print(json.dumps({
    "paths": paths,
    "wsgi": [wsgi_get(path) for path in paths],
    "asgi": [asyncio.run(asgi_get(path)) for path in paths],
}))
"""

FAR_FUTURE_S = 365 * 24 * 3600


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict:
    var_dir = tmp_path_factory.mktemp("static-var")
    env = production_env(var_dir)
    collected = manage(env, "collectstatic", "--noinput", "--verbosity", "0", timeout=300)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    names = ["css/app.css"]
    if (ROOT / "node_modules" / "cytoscape" / "dist" / "cytoscape.min.js").is_file():
        names.append("vendor/cytoscape/dist/cytoscape.min.js")
    probe = subprocess.run(
        [python(), "-c", f"import django; django.setup()\n{PROBE}", *names],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    return {"var_dir": Path(var_dir), **json.loads(probe.stdout.strip().splitlines()[-1])}


@pytest.mark.parametrize("app", ["wsgi", "asgi"])
def test_static_files_are_served_with_debug_off_after_collectstatic(served, app):
    plain = served[app][0]
    assert plain["status"] == 200 and plain["length"] > 0
    assert plain["headers"]["content-type"].startswith("text/css")
    # The security middleware still wraps whitenoise: the proxy's https is believed.
    assert "max-age=31536000" in plain["headers"]["strict-transport-security"]


@pytest.mark.parametrize("app", ["wsgi", "asgi"])
def test_hashed_names_are_cached_for_good(served, app):
    hashed = list(zip(served["paths"][1:], served[app][1:], strict=True))
    assert hashed, "no hashed names probed"
    for path, response in hashed:
        assert re.search(r"\.[0-9a-f]{12}\.(css|js)$", path), path
        assert response["status"] == 200 and response["length"] > 0, path
        cache = response["headers"]["cache-control"]
        assert "immutable" in cache, (path, cache)
        max_age = int(re.search(r"max-age=(\d+)", cache).group(1))
        assert max_age >= FAR_FUTURE_S, (path, cache)


def test_npm_files_are_collected_under_vendor(served):
    if len(served["paths"]) < 3:
        pytest.skip("node_modules is not installed (npm ci)")
    assert served["paths"][2].startswith("/static/vendor/cytoscape/dist/cytoscape.min.")
    assert (served["var_dir"] / "static" / "vendor" / "cytoscape" / "dist").is_dir()
