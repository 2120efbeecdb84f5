"""A JSON parser that refuses oversized bodies even when no Content-Length was sent."""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from orchestrator.api.errors import PayloadTooLarge


def read_limited(stream, limit: int) -> bytes:
    data = stream.read(limit + 1) if stream is not None else b""
    if len(data) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    return data


class LimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = getattr(settings, "API_MAX_BODY_BYTES", 2 * 1024 * 1024)
        raw = read_limited(stream, limit)
        if not raw.strip():
            return {}
        try:
            return json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ParseError("the body is not UTF-8.") from None
        except json.JSONDecodeError as exc:
            raise ParseError(f"{exc.msg} at line {exc.lineno} column {exc.colno}.") from None
        except RecursionError:
            raise ParseError("the JSON is nested too deeply.") from None
