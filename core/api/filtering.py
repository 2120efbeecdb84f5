"""django-filter, but an unknown query parameter is a 400 instead of being silently ignored.

A typo like `?stauts=failed` would otherwise return every row and look like a correct answer.
A list that filters nothing is checked by its paginator instead (`ItemsCursorPagination`).
"""

from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend

from core.api.pagination import PAGINATION_PARAMS, PARAMS_CHECKED
from core.params import refuse_unknown_params


class StrictFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        allowed = set(PAGINATION_PARAMS) | set(getattr(view, "extra_query_params", ()))
        if filterset_class is not None:
            allowed |= set(filterset_class.base_filters)
        refuse_unknown_params(request.query_params, allowed)
        setattr(request, PARAMS_CHECKED, True)
        return super().filter_queryset(request, queryset, view)
