"""The API's JSON parser: the body rules of `orchestrator.json_bodies`, under the API's limit."""

from __future__ import annotations

from django.conf import settings
from rest_framework.parsers import JSONParser

from orchestrator.json_bodies import parse_json_body, read_limited


class LimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = getattr(settings, "API_MAX_BODY_BYTES", 2 * 1024 * 1024)
        return parse_json_body(read_limited(stream, limit))
