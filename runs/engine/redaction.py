"""Credential values never leave a step in clear, and what a step brings back can be stored.

The product itself never writes a secret into an output, an error or an event, but the servers it
talks to may: an upstream that reflects the request (httpbin's `/headers`), an API whose 401 quotes
the token it refused, a model server whose error names the key, an HTTP library that puts an
invalid header value in its exception. Whatever a step brings back is masked with the
secrets the step was given (a `Redactor`) before it is stored, logged or sent to a client.

The same walk repairs text no column can store (U+0000, an unpaired surrogate: a JSON answer may
escape either), replacing each such character with U+FFFD. Kept as they came, they failed the
step's record on PostgreSQL (which left the step running until its lease ran out, to fail
again on the next attempt) and every later answer that held them on SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from orchestrator.definition.checks import storable

MASK = "[redacted]"
# Names of headers and URL parameters whose values are credentials: the one list the gallery's
# scrub of public definitions and the redaction of logged URLs share. `sig` only as a whole word
# (Azure's SAS `sig=`), not inside `signal` or `design`.
SECRET_NAME = re.compile(
    r"auth|cookie|token|secret|key|pass|pwd|signature|credential|session|jwt|bearer|private"
    r"|(?:^|[^a-z])sig(?:$|[^a-z])",
    re.I,
)


def is_secret_name(name: str) -> bool:
    """Whether a header or parameter named `name` (percent-encoded or not) holds a credential."""
    return bool(SECRET_NAME.search(unquote(name)))


# Shorter values are left alone: masking every "ab" in an output would make it unreadable, and a
# two-letter secret is no secret anyway.
MIN_LENGTH = 6


class Redactor:
    """Replaces each secret, longest first (so that a value never survives inside a longer one
    half-masked), and each character no column can store, in every string of a JSON-like value:
    dict keys, list items, nested values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        found = {secret for secret in secrets if secret and len(secret) >= MIN_LENGTH}
        self.secrets = tuple(sorted(found, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, MASK)
            return storable(value)
        if isinstance(value, dict):
            return {self(key): self(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self(item) for item in value]
        return value
