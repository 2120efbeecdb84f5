"""Cursor pagination answering {"items": [...], "next_cursor": "<opaque>" | null}."""

from __future__ import annotations

from base64 import b64encode
from urllib import parse

from django.core.exceptions import FieldDoesNotExist, ValidationError
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.response import Response

from core.domain_errors import InvalidRequest
from core.params import integer_param, refuse_unknown_params

PAGINATION_PARAMS = frozenset({"limit", "cursor"})
# Set on a request whose query the filter backend checked against the list's filters.
PARAMS_CHECKED = "query_params_checked"


def invalid_cursor() -> InvalidRequest:
    return InvalidRequest(
        "The cursor is not valid; use next_cursor from a previous page.",
        fields={"cursor": ["invalid cursor"]},
    )


class ItemsCursorPagination(CursorPagination):
    page_size = 50
    max_page_size = 200
    page_size_query_param = "limit"
    cursor_query_param = "cursor"
    ordering = "-created_at"

    def get_ordering(self, request, queryset, view):
        ordering = getattr(view, "cursor_ordering", self.ordering)
        return (ordering,) if isinstance(ordering, str) else tuple(ordering)

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        return integer_param(raw, "limit", minimum=1, maximum=self.max_page_size)

    def paginate_queryset(self, queryset, request, view=None):
        if not getattr(request, PARAMS_CHECKED, False):
            # A list that filters nothing (an orchestration's versions and triggers) reads
            # no parameter but these: one it ignores would look like a filter that worked.
            allowed = PAGINATION_PARAMS | set(getattr(view, "extra_query_params", ()))
            refuse_unknown_params(request.query_params, allowed)
        self.model = queryset.model  # for `decode_cursor`, which DRF gives only the request
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request) -> Cursor | None:
        """A cursor is base64 a client can forge: its position must be a value of the ordering
        column, or the filter on it failed inside the query (a 500) instead of here."""
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise invalid_cursor() from None
        if cursor is None or cursor.position is None:
            return cursor
        try:
            field = self.model._meta.get_field(self.ordering[0].lstrip("-"))
        except FieldDoesNotExist:
            return cursor
        try:
            field.run_validators(field.to_python(cursor.position))
        except ValidationError:
            raise invalid_cursor() from None
        return cursor

    def encode_cursor(self, cursor) -> str:
        tokens = {}
        if cursor.offset != 0:
            tokens["o"] = str(cursor.offset)
        if cursor.reverse:
            tokens["r"] = "1"
        if cursor.position is not None:
            tokens["p"] = cursor.position
        return b64encode(parse.urlencode(tokens, doseq=True).encode("ascii")).decode("ascii")

    def get_paginated_response(self, data) -> Response:
        return Response({"items": data, "next_cursor": self.get_next_link()})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": schema,
                "next_cursor": {"type": "string", "nullable": True},
            },
        }
