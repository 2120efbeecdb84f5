"""What a process loads when it starts: every process (web, worker, manage.py) loads the whole
app, so what it imports then is paid by every start, every worker recycled, every command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.ops.conftest import ROOT, base_env


def started_process(tmp_path, code: str, *args: str) -> subprocess.CompletedProcess:
    """`code` run by a new Python process with only what a process needs to start."""
    started = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=base_env(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr[-2000:]
    return started


PROCESS = """
import sys
import django
django.setup()
import config.asgi, config.wsgi, runs.tasks
print(sorted(name for name in ("anthropic", "google.genai") if name in sys.modules))
"""


def test_a_process_loads_no_model_provider_sdk_before_a_step_uses_it(tmp_path):
    """The Anthropic and Google SDKs were a second and a half of every start (5.3 to 3.4 s here
    for django.setup()); the first `anthropic/` or `google/` step loads its own."""
    started = started_process(tmp_path, PROCESS)
    assert started.stdout.strip().splitlines()[-1] == "[]"


FROZEN = """
import gc, sys
import django
django.setup()
if sys.argv[1] == "worker":
    from celery.signals import worker_process_init
    import config.celery
    worker_process_init.send(sender=None)
else:
    __import__(f"config.{sys.argv[1]}")
print(gc.get_freeze_count(), len(gc.get_objects()))
"""


@pytest.mark.parametrize("process", ["wsgi", "asgi", "worker"])
def test_a_started_process_leaves_what_it_loaded_out_of_the_collectors_scans(tmp_path, process):
    """Web servers freeze once the app is loaded, pool processes once they start: a full
    collection then scans what requests and tasks made, not the 300,000 objects of the app
    (a 160 ms pause each time here, which a list page's p99 under load was made of)."""
    started = started_process(tmp_path, FROZEN, process)
    frozen, scanned = map(int, started.stdout.split()[-2:])
    assert frozen > 100_000
    assert scanned < frozen / 20
