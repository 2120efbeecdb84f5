"""`GET /models`: the models an agent may name, for the editor, cursor-paginated like every list."""

from __future__ import annotations

import base64
import binascii

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.pagination import PAGINATION_PARAMS, ItemsCursorPagination, invalid_cursor
from core.params import integer_param, parse_integer, refuse_unknown_params
from runs.services.catalogue import model_catalogue

_PRICE = inline_serializer(
    "ModelPrice",
    {"input_per_1k": serializers.FloatField(), "output_per_1k": serializers.FloatField()},
    allow_null=True,
)
MODEL_FIELDS = {
    "model": serializers.CharField(help_text="provider/name, as an agent's `model` says it"),
    "provider": serializers.CharField(),
    "aliases": serializers.ListField(
        child=serializers.CharField(), help_text="names that resolve to it (and `default`)"
    ),
    "price": _PRICE,
    "context_window": serializers.IntegerField(allow_null=True),
    "configured": serializers.BooleanField(
        help_text="a key for its provider is set (always true for builtin models)"
    ),
}


def _offset(cursor: str | None) -> int:
    """A cursor of this list is the opaque form of an offset into it."""
    if cursor is None:
        return 0
    try:
        offset = parse_integer(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        offset = None
    if offset is None:
        raise invalid_cursor()
    return offset


class ModelListView(APIView):
    """The builtin models and the price table's models of each provider, by name."""

    @extend_schema(
        tags=["agents"],
        operation_id="models_list",
        parameters=[
            OpenApiParameter("limit", int, description="items per page, 1 to 200 (default 50)"),
            OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
        ],
        responses=inline_serializer(
            "ModelList",
            {
                "items": inline_serializer("Model", MODEL_FIELDS, many=True),
                "next_cursor": serializers.CharField(allow_null=True),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        refuse_unknown_params(request.query_params, PAGINATION_PARAMS)
        limit = ItemsCursorPagination.page_size
        if "limit" in request.query_params:
            limit = integer_param(
                request.query_params["limit"],
                "limit",
                minimum=1,
                maximum=ItemsCursorPagination.max_page_size,
            )
        start = _offset(request.query_params.get("cursor"))
        items = model_catalogue()
        end = start + limit
        next_cursor = (
            base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
        )
        return Response({"items": items[start:end], "next_cursor": next_cursor})
