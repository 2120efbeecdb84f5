"""Integers sent as text: in paths (version numbers), query parameters (`limit`, `after`) and
headers (`Last-Event-ID`, `Content-Length`, a webhook signature's `t=`).

`int()` is the wrong reader for them. It takes more than digits (`' 7 '`, `'1_000'`, `'+7'`, and
digits of every script: `int('٣')` is 3), raises ValueError past 4,300 digits, and a number it
does read may not fit a database integer column, which then fails the query. Each of those was a
server error or a silently different request. Every such integer goes through `parse_integer`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from core.domain_errors import InvalidRequest

# The largest value of a 64-bit integer column (PostgreSQL bigint, SQLite INTEGER).
MAX_INTEGER = 2**63 - 1
# ASCII digits only, and few enough that converting them is cheap and can never overflow.
_INTEGER = re.compile(r"-?[0-9]{1,19}")


def parse_integer(
    text: str | bytes | None, *, minimum: int = 0, maximum: int = MAX_INTEGER
) -> int | None:
    """`text` as an integer from `minimum` to `maximum`, or None when it is anything else."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    if text is None or not _INTEGER.fullmatch(text):
        return None
    value = int(text)
    return value if minimum <= value <= maximum else None


def integer_param(
    text: str | None, name: str, *, minimum: int = 0, maximum: int = MAX_INTEGER
) -> int:
    """`parse_integer`, or a 400 `validation_error` naming the parameter."""
    value = parse_integer(text, minimum=minimum, maximum=maximum)
    if value is None:
        rule = f"must be an integer from {minimum} to {maximum}, in ASCII digits"
        raise InvalidRequest(f"{name} {rule}.", fields={name: [rule]})
    return value


def refuse_unknown_params(query: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """400 for a query parameter the endpoint does not read: a typo like `?stauts=failed` would
    otherwise return every row and look like a correct answer."""
    known = set(allowed)
    unknown = sorted(set(query) - known)
    if unknown:
        listing = ", ".join(sorted(known))
        raise InvalidRequest(
            f"Unknown query parameter '{unknown[0]}'. Allowed here: {listing}.",
            fields={name: [f"unknown parameter; allowed: {listing}"] for name in unknown},
        )
