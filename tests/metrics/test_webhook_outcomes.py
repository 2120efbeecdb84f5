"""Every inbound webhook request is counted once, by outcome, in a table all web processes share."""

from __future__ import annotations

import json
import time

import pytest
from rest_framework.test import APIClient, APIRequestFactory

from orchestrator.models import WebhookOutcome, WebhookRequestCount
from orchestrator.services import webhooks
from runs.api.webhook_views import WebhookThrottle, WebhookView
from tests.metrics.scrape import scrape

pytestmark = pytest.mark.django_db

FLOW = {
    "name": "Hook",
    "status": "active",
    "definition": {
        "inputs": [{"name": "text", "type": "string", "required": True}],
        "nodes": [{"id": "echo", "type": "transform", "config": {"output": "{{ input.text }}"}}],
    },
    "triggers": [
        {
            "kind": "webhook",
            "input_schema": {"type": "object", "required": ["text"]},
        }
    ],
}


@pytest.fixture
def hook(editor) -> dict:
    created = editor.post("/api/v1/orchestrations", FLOW, format="json").json()
    trigger = created["triggers"][0]
    return {
        "url": trigger["webhook_url"],
        "secret": trigger["signing_secret"],
        "orchestration": created["id"],
    }


def body_of(data) -> bytes:
    return data if isinstance(data, bytes) else json.dumps(data).encode()


def signature(secret: str, body: bytes) -> str:
    now = int(time.time())
    return f"t={now},v1={webhooks.sign(secret, now, body)}"


def deliver(hook: dict, data, *, header: str | None = None):
    body = body_of(data)
    header = signature(hook["secret"], body) if header is None else header
    return APIClient().generic(
        "POST",
        hook["url"],
        body,
        content_type="application/json",
        HTTP_X_ORCHESTRATOR_SIGNATURE=header,
    )


def counts() -> dict[str, int]:
    return dict(WebhookRequestCount.objects.values_list("outcome", "count"))


def test_each_outcome_is_counted_and_exposed(settings, editor, hook):
    body = body_of({"text": "hi"})
    header = signature(hook["secret"], body)
    assert deliver(hook, body, header=header).status_code == 202
    assert deliver(hook, body, header=header).status_code == 202  # the same signature again
    assert deliver(hook, {"text": "hi"}, header="t=1,v1=00").status_code == 401
    assert deliver(hook, b"{not json").status_code == 400
    assert deliver(hook, {"other": 1}).status_code == 400  # the input_schema refuses it
    assert deliver(hook, {"text": "again"}).status_code == 202
    editor.post(f"/api/v1/orchestrations/{hook['orchestration']}/pause")
    assert deliver(hook, {"text": "paused"}).status_code == 409

    assert counts() == {
        "accepted": 2,
        "duplicate": 1,
        "unauthorized": 1,
        "bad_request": 2,
        "rejected": 1,
    }
    metrics = scrape(settings)
    assert metrics.series("orchestrator_webhook_requests_total") == {
        (("outcome", outcome),): expected
        for outcome, expected in {
            "accepted": 2,
            "bad_request": 2,
            "duplicate": 1,
            "error": 0,
            "rejected": 1,
            "throttled": 0,
            "too_large": 0,
            "unauthorized": 1,
        }.items()
    }


def test_a_request_over_the_rate_limit_is_counted_as_throttled(monkeypatch, hook):
    monkeypatch.setattr(WebhookThrottle, "rate", "1/min", raising=False)
    assert deliver(hook, {"text": "one"}).status_code == 202
    assert deliver(hook, {"text": "two"}).status_code == 429
    assert counts() == {"accepted": 1, "throttled": 1}


def test_a_streamed_body_over_the_limit_is_counted_as_too_large(settings, hook):
    # Without a Content-Length the middleware cannot refuse it early; the view reads up to the
    # limit. Calling the view directly, past the middleware, is that case.
    settings.WEBHOOK_MAX_BODY_BYTES = 1024
    body = body_of({"text": "x" * 2048})
    request = APIRequestFactory().generic(
        "POST",
        hook["url"],
        body,
        content_type="application/json",
        HTTP_X_ORCHESTRATOR_SIGNATURE=signature(hook["secret"], body),
    )
    orchestration_id, token = hook["url"].rstrip("/").split("/")[-2:]
    response = WebhookView.as_view()(request, orchestration_id=orchestration_id, token=token)
    assert response.status_code == 413
    assert counts() == {"too_large": 1}


def test_an_unexpected_failure_is_counted_as_an_error(monkeypatch, hook):
    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr("runs.services.lifecycle.fire", broken)
    with pytest.raises(RuntimeError):
        deliver(hook, {"text": "hi"})
    assert counts() == {"error": 1}


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (202, WebhookOutcome.ACCEPTED),
        (400, WebhookOutcome.BAD_REQUEST),
        (401, WebhookOutcome.UNAUTHORIZED),
        (405, WebhookOutcome.REJECTED),
        (409, WebhookOutcome.REJECTED),
        (413, WebhookOutcome.TOO_LARGE),
        (429, WebhookOutcome.THROTTLED),
        (503, WebhookOutcome.ERROR),
    ],
)
def test_a_status_maps_to_one_outcome(status, outcome):
    assert webhooks.outcome_for_status(status) == outcome


def test_counting_adds_to_the_row_other_processes_created():
    WebhookRequestCount.objects.create(outcome=WebhookOutcome.ACCEPTED, count=41)
    webhooks.count_request(WebhookOutcome.ACCEPTED)
    webhooks.count_request(WebhookOutcome.DUPLICATE)
    assert counts() == {"accepted": 42, "duplicate": 1}


def test_a_declared_body_over_the_limit_is_refused_early_and_counted_as_too_large(
    settings, hook, client
):
    settings.WEBHOOK_MAX_BODY_BYTES = 1024
    body = body_of({"text": "x" * 2048})
    response = client.post(
        hook["url"],
        body,
        content_type="application/json",
        HTTP_X_ORCHESTRATOR_SIGNATURE=signature(hook["secret"], body),
    )
    assert response.status_code == 413
    assert counts() == {"too_large": 1}
