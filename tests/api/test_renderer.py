"""The API's JSON comes from orjson; what a client reads must be what DRF's renderer wrote."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

import pytest
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from core.api.renderers import FastJSONRenderer

SAMPLES = [
    {
        "when": timezone.now(),
        "day": datetime.date(2026, 3, 29),
        "at": datetime.time(1, 30, 15, 250000),
        "cost": decimal.Decimal("0.5200"),
        "id": uuid.UUID("0b6f2a4e-6c2e-4a39-9a57-2f1d5b8c7e10"),
        "text": "naïve\u2028line\u2029para <script>",
        "numbers": {1: "one", 2.5: "two and a half"},
        "pair": (1, 2),
        "tags": {"only"},
        "nothing": None,
        "float": 1.25,
    },
    {"huge": 2**70, "list": [2**64, -(2**63)]},  # past 64 bits: DRF's renderer writes it
    [],
    "plain",
]


@pytest.mark.parametrize("data", SAMPLES)
def test_the_fast_renderer_writes_what_drf_writes(data):
    assert FastJSONRenderer().render(data) == JSONRenderer().render(data)


def test_nothing_renders_as_an_empty_body_and_indent_is_honoured():
    assert FastJSONRenderer().render(None) == b""
    indented = FastJSONRenderer().render({"a": 1}, "application/json; indent=2")
    assert indented == b'{\n  "a": 1\n}'


@pytest.mark.parametrize("accepted", [None, "application/json; indent=2"])
def test_text_utf8_cannot_encode_goes_out_escaped_not_as_an_error(accepted):
    # An unpaired surrogate that an earlier release kept from a step's answer (on SQLite) made
    # every read of its run a 500: orjson, then DRF's renderer, refused to encode it.
    body = FastJSONRenderer().render({"text": "a\ud800b"}, accepted)
    assert json.loads(body) == {"text": "a\ud800b"}
    assert b"\\ud800" in body
