"""Filters of the run lists."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

from orchestrator.choices import McpServerStatus, TriggerKind
from orchestrator.filtersets import ListFilterSet
from orchestrator.models import McpServer
from runs.engine import RunStatus
from runs.models import Run


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, compared in UTC. Python reads UTC offsets up to ±23:59, PostgreSQL only
    up to ±15:59: `?to=...+18:23` failed the query there (a 500) until the time was sent as UTC."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # year 1 with a positive offset is before year 1 in UTC
            raise ValidationError("is out of the range of dates", code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class RunFilter(ListFilterSet):
    status = django_filters.ChoiceFilter(choices=[(s.value, s.value) for s in RunStatus])
    orchestration = django_filters.UUIDFilter(field_name="orchestration_id")
    trigger = django_filters.ChoiceFilter(field_name="trigger_kind", choices=TriggerKind.choices)
    # `from` is a keyword, so the two bounds are added below under their API names.

    class Meta:
        model = Run
        fields: list[str] = []


RunFilter.base_filters["from"] = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
RunFilter.base_filters["to"] = UtcDateTimeFilter(field_name="created_at", lookup_expr="lte")


class McpServerFilter(ListFilterSet):
    status = django_filters.ChoiceFilter(choices=McpServerStatus.choices)
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = McpServer
        fields: list[str] = []
