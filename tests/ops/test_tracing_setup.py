"""Tracing is off, and costs no SDK, unless an OTLP endpoint is set; a malformed one stops the
start naming the variable."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.ops.conftest import ROOT, base_env, python

# What a process of each kind loads, then whether it traces and which modules of the tracing
# SDK and exporter it imported (redis-py imports the SDK's metrics part on its own).
PROBE = """
import json, sys
import django
django.setup()
import config.celery, runs.services.progress, runs.tasks
from config import tracing
enabled = tracing.enabled()
print(json.dumps({
    "enabled": enabled,
    "sdk": sorted(
        m for m in sys.modules
        if m.startswith(("opentelemetry.sdk.trace", "opentelemetry.exporter"))
    ),
}))
"""


def probe(tmp_path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python(), "-c", PROBE],
        cwd=ROOT,
        env=base_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_an_endpoint_no_tracing_sdk_is_loaded(tmp_path):
    result = probe(tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"enabled": False, "sdk": []}


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
)
def test_an_endpoint_turns_tracing_on(tmp_path, variable):
    result = probe(tmp_path, **{variable: "http://127.0.0.1:4318"})
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.splitlines()[-1])
    assert answer["enabled"] is True
    assert {"opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http"} <= set(
        answer["sdk"]
    )


def test_the_sdk_switch_keeps_tracing_off(tmp_path):
    result = probe(
        tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318", OTEL_SDK_DISABLED="true"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"enabled": False, "sdk": []}


@pytest.mark.parametrize(
    "value", ["127.0.0.1:4318", "grpc://collector:4317", "http://", "http://[::1"]
)
def test_a_malformed_endpoint_stops_the_start_naming_it(tmp_path, value):
    result = probe(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=value)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last, result.stderr
    assert "OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL" in last
