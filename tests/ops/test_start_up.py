"""What a process loads when it starts: every process (web, worker, manage.py) loads the whole
app, so what it imports then is paid by every start, every worker recycled, every command."""

from __future__ import annotations

import subprocess
import sys

from tests.ops.conftest import ROOT, base_env

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
    started = subprocess.run(
        [sys.executable, "-c", PROCESS],
        env=base_env(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr[-2000:]
    assert started.stdout.strip().splitlines()[-1] == "[]"
