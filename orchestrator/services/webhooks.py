"""Verifying inbound webhooks: `X-Orchestrator-Signature: t=<unix>,v1=<hex HMAC-SHA256>` of
"<t>.<raw body>", compared in constant time, within 300 s, each signature accepted once."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import timedelta

from django.utils import timezone

from orchestrator import crypto
from orchestrator.models import Trigger

TOLERANCE_S = 300
ROTATION_OVERLAP = timedelta(hours=24)


class SignatureError(Exception):
    """Why a request was refused; logged and counted, never shown in detail to the caller."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def parse_header(header: str) -> tuple[int, list[str]]:
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
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
