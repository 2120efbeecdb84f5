"""Secrets in URLs stay out of the logs: the value of every query parameter named like a
credential (`?token=` above all, which websockets and scripts use) is replaced by [redacted] in
daphne's access log (config.serve, as the Procfiles run it) and in every structured line."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
from django.test import RequestFactory

from config.logfilters import redact_url_secrets
from tests.ops.conftest import JsonLines, configured_formatter
from tests.serving import serve

CANARY = "orc_canary-7f3a9"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/ws/runs/1/?token=" + CANARY, "/ws/runs/1/?token=[redacted]"),
        (f"/ws/runs/1/?after=3&token={CANARY}&x=1", "/ws/runs/1/?after=3&token=[redacted]&x=1"),
        (f"/p?TOKEN={CANARY}", "/p?TOKEN=[redacted]"),
        (f"https://h/p?api_key={CANARY}&access_token={CANARY}", None),
        (f"https://h/p?q=1;sessionid={CANARY}#top", "https://h/p?q=1;sessionid=[redacted]#top"),
        (f"GET /x?password={CANARY} HTTP/1.1", "GET /x?password=[redacted] HTTP/1.1"),
        (f"'/api/v1/runs?X-Signature={CANARY}'", "'/api/v1/runs?X-Signature=[redacted]'"),
    ],
)
def test_secret_named_query_values_are_redacted(url, expected):
    redacted = redact_url_secrets(url)
    assert CANARY not in redacted
    if expected is not None:
        assert redacted == expected


@pytest.mark.parametrize(
    "url", ["/api/v1/runs?after=3&status=failed", "/gallery/?q=token&tag=key", "/s/abc?x=1"]
)
def test_other_query_values_are_kept(url):
    assert redact_url_secrets(url) == url


@pytest.fixture
def json_lines():
    handler = JsonLines()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def test_djangos_warning_for_a_refused_request_carries_no_token(json_lines):
    """django.request attaches the request, whose text is the full path with its query."""
    request = RequestFactory().get("/api/v1/runs", {"token": CANARY, "after": "2"})
    logging.getLogger("django.request").warning(
        "Unauthorized: %s", request.get_full_path(), extra={"request": request, "status_code": 401}
    )
    line = json_lines.stream.getvalue()
    assert CANARY not in line
    assert "token=[redacted]" in line and "after=2" in line


def test_an_outbound_url_logged_by_httpx_carries_no_key(json_lines):
    logging.getLogger("httpx").info(
        'HTTP Request: GET https://api.example.com/v1?api_key=%s "HTTP/1.1 200 OK"', CANARY
    )
    assert CANARY not in json_lines.stream.getvalue()


def test_the_console_format_redacts_too():
    record = logging.LogRecord(
        "django.request",
        logging.WARNING,
        __file__,
        1,
        "Not Found: %s",
        (f"/x?token={CANARY}",),
        None,
    )
    text = configured_formatter("console").format(record)
    assert CANARY not in text and "token=[redacted]" in text


@pytest.mark.django_db(transaction=True)
def test_daphnes_access_log_carries_no_token(django_db_setup, tmp_path):
    log = tmp_path / "daphne.log"
    with serve(log, module="config.serve") as base, httpx.Client(trust_env=False) as client:
        assert client.get(f"{base}/healthz", params={"token": CANARY}).status_code == 200
        refused = client.get(f"{base}/api/v1/runs", params={"after": "1", "api_key": CANARY})
        assert refused.status_code == 401
        time.sleep(0.5)  # the access log line is written after the response
    text = log.read_text()
    assert "/healthz?token=[redacted]" in text
    assert "/api/v1/runs?after=1&api_key=[redacted]" in text
    assert CANARY not in text
