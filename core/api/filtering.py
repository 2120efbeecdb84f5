"""django-filter, but an unknown query parameter is a 400 instead of being silently ignored.

A typo like `?stauts=failed` would otherwise return every row and look like a correct answer.
"""

from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend

from core.api.pagination import PAGINATION_PARAMS
from core.domain_errors import InvalidRequest


class StrictFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        allowed = set(PAGINATION_PARAMS) | set(getattr(view, "extra_query_params", ()))
        if filterset_class is not None:
            allowed |= set(filterset_class.base_filters)
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            listing = ", ".join(sorted(allowed))
            raise InvalidRequest(
                f"Unknown query parameter '{unknown[0]}'. Allowed here: {listing}.",
                fields={name: [f"unknown parameter; allowed: {listing}"] for name in unknown},
            )
        return super().filter_queryset(request, queryset, view)
