"""Inbound webhooks: `X-Orchestrator-Signature: t=<unix>,v1=<hex HMAC-SHA256>` of
"<t>.<raw body>", compared in constant time, within 300 s. Finding the trigger, verifying the
signature and checking the body live here; recording the delivery once per signature and firing
its run is `runs.services.firing.accept`."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from datetime import timedelta
from typing import Any

from django.db.models import F
from django.utils import timezone

from core import crypto
from core.domain_errors import Conflict, TriggerMismatch
from core.params import parse_integer
from orchestrator.choices import TriggerKind
from orchestrator.definition.jsonschemas import first_error
from orchestrator.json_bodies import parse_json_body
from orchestrator.models import Trigger, WebhookOutcome, WebhookRequestCount

TOLERANCE_S = 300
ROTATION_OVERLAP = timedelta(hours=24)
# What a refusal's status says about the request; 202 is accepted unless the view knows better.
OUTCOME_BY_STATUS = {
    202: WebhookOutcome.ACCEPTED,
    400: WebhookOutcome.BAD_REQUEST,
    401: WebhookOutcome.UNAUTHORIZED,
    413: WebhookOutcome.TOO_LARGE,
    429: WebhookOutcome.THROTTLED,
}


class SignatureError(Exception):
    """Why a request was refused; logged and counted, never shown in detail to the caller."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def parse_header(header: str) -> tuple[int, list[str]]:
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = parse_integer(value)
        elif key == "v1" and value:
            signatures.append(value.strip().lower())
    if timestamp is None or not signatures:
        raise SignatureError("malformed signature header")
    return timestamp, signatures


def secrets_of(trigger: Trigger) -> list[str]:
    """The current secret, and the previous one for 24 hours after a rotation."""
    found = [crypto.decrypt(trigger.encrypted_signing_secret)]
    if (
        trigger.encrypted_previous_secret
        and trigger.secret_rotated_at
        and (timezone.now() - trigger.secret_rotated_at < ROTATION_OVERLAP)
    ):
        found.append(crypto.decrypt(trigger.encrypted_previous_secret))
    return found


def verify(trigger: Trigger, header: str, body: bytes, now: float | None = None) -> str:
    """Returns the matching signature (the replay key), or raises SignatureError."""
    if not header:
        raise SignatureError("missing signature header")
    timestamp, given = parse_header(header)
    if abs((now or time.time()) - timestamp) > TOLERANCE_S:
        raise SignatureError("timestamp outside the 300 s window")
    for secret in secrets_of(trigger):
        expected = sign(secret, timestamp, body)
        for candidate in given:
            if hmac.compare_digest(expected, candidate):
                return expected
    raise SignatureError("signature does not match")


def outcome_for_status(status_code: int) -> WebhookOutcome:
    if status_code in OUTCOME_BY_STATUS:
        return OUTCOME_BY_STATUS[status_code]
    return WebhookOutcome.ERROR if status_code >= 500 else WebhookOutcome.REJECTED


def count_request(outcome: WebhookOutcome) -> None:
    """One more request with this outcome, added in the database (not in this process's memory)
    so that a scrape of any web process sees what all of them handled."""
    counts = WebhookRequestCount.objects.filter(outcome=outcome)
    if counts.update(count=F("count") + 1):
        return
    # The first request with this outcome: create the row, unless another process just did.
    WebhookRequestCount.objects.bulk_create(
        [WebhookRequestCount(outcome=outcome, count=0)], ignore_conflicts=True
    )
    counts.update(count=F("count") + 1)


def find_trigger(orchestration_id: str, token: str) -> Trigger:
    """The webhook trigger a URL names; an unknown one is refused like a bad signature."""
    try:
        orchestration_uuid = uuid.UUID(orchestration_id)
    except ValueError:
        raise SignatureError("bad orchestration id") from None
    trigger = (
        Trigger.objects.filter(
            orchestration_id=orchestration_uuid, kind=TriggerKind.WEBHOOK, webhook_token=token
        )
        .select_related("orchestration")
        .first()
    )
    if trigger is None or not token:
        raise SignatureError("unknown token")
    return trigger


def check_payload(trigger: Trigger, body: bytes) -> dict[str, Any]:
    """The body as the run's payload: a JSON object that fits the trigger's input_schema."""
    if not trigger.is_active:
        raise Conflict(
            "This webhook trigger is paused (is_active is false): it starts nothing until it is "
            "switched on again."
        )
    payload = parse_json_body(body)
    if not isinstance(payload, dict):
        raise TriggerMismatch("The webhook body must be a JSON object.")
    if trigger.input_schema:
        error = first_error(trigger.input_schema, payload)
        if error is not None:
            raise TriggerMismatch(
                f"The body does not match the trigger's input_schema: {error.message}"
            )
    return payload
