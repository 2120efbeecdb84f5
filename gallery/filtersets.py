"""Filters of the public gallery."""

from __future__ import annotations

import django_filters
from django.db.models import Q

from orchestrator.models import Orchestration


class GalleryFilter(django_filters.FilterSet):
    tag = django_filters.CharFilter(field_name="tag_rows__name")
    q = django_filters.CharFilter(method="filter_search")

    class Meta:
        model = Orchestration
        fields: list[str] = []

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))
