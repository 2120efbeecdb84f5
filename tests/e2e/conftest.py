"""Browser tests: daphne and a Celery worker as real processes on the test database, driven by
headless chromium through Playwright.

The test process creates data with the services and reads the outcome from the database; the
browser only talks to the daphne process, over HTTP and the websocket, as a person's would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import expect

from core.choices import Role
from orchestrator.models import Membership
from runs.services.resolve import PROVIDER_KEY_SETTINGS
from tests.serving import free_port
from tests.worker.conftest import ROOT, Worker, database_url, purge_broker

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "a-long-test-password"

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still
# plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="module")
def stack(django_db_setup, tmp_path_factory):
    """(base URL, worker): the web server and a worker on the test database, shared by the
    tests of a module (each test's data is committed through `transactional_db`, then flushed).
    Gone before the next module: a leftover worker would take other tests' tasks."""
    from django.conf import settings

    tmp_path = tmp_path_factory.mktemp("stack")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium is not installed at {CHROMIUM} (.ci/run installs it)")
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "VAR_DIR": str(settings.VAR_DIR),
        "STATICFILES_BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage",
        "DEBUG": "false",
        "PYTHONUNBUFFERED": "1",
        # No provider key from the machine: the editor shows what a server without keys shows.
        **dict.fromkeys(PROVIDER_KEY_SETTINGS.values(), ""),
        # Nor the machine's allowed networks: the stack's guard refuses inside addresses.
        "HTTP_ALLOWED_NETWORKS": "",
    }
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    purge_broker()
    port = free_port()
    log = (tmp_path / "daphne.log").open("w")
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = Worker(env, concurrency=2)
    worker.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or web.poll() is not None:
                raise AssertionError((tmp_path / "daphne.log").read_text()) from None
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}", worker
    worker.kill()  # a throwaway worker: no need to wait for a warm shutdown
    os.killpg(web.pid, signal.SIGTERM)
    try:
        web.wait(timeout=5)
    except subprocess.TimeoutExpired:  # open websockets keep daphne waiting
        os.killpg(web.pid, signal.SIGKILL)
        web.wait(timeout=5)
    purge_broker()
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def member(transactional_db, org):
    user = get_user_model().objects.create_user("ada", password=PASSWORD)
    Membership.objects.create(user=user, organization=org, role=Role.EDITOR, is_default=True)
    return user


@pytest.fixture(scope="module")
def browser():
    """One chromium per module: Playwright's sync API keeps an event loop in this thread while
    it runs, which later async_to_sync calls in other test modules must not meet."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, stack, member):
    """A signed-in page at 1280x800 (the session cookie is set directly; one test signs in
    through the form); JS errors and assets the server does not have (scripts, styles, images,
    the icon) fail the test."""
    base, _ = stack
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 800})
    client = Client()
    client.force_login(member)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}]
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda response: _note_missing_asset(response, errors))
    page.goto("/")
    expect(page.locator("h1")).to_have_text("Orchestrations")
    yield page
    context.close()
    assert errors == [], errors


def _note_missing_asset(response, errors: list[str]) -> None:
    """API answers and pages may be 4xx on purpose (a conflict, a revoked link); an asset never."""
    if response.status >= 400 and response.request.resource_type not in (
        "document",
        "fetch",
        "xhr",
    ):
        errors.append(f"{response.status} {response.url}")
