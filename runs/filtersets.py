"""Filters of the run lists."""

from __future__ import annotations

import django_filters

from orchestrator.filtersets import ListFilterSet
from runs.engine import RunStatus
from runs.models import Run, TriggerKind


class RunFilter(ListFilterSet):
    status = django_filters.ChoiceFilter(choices=[(s.value, s.value) for s in RunStatus])
    orchestration = django_filters.UUIDFilter(field_name="orchestration_id")
    trigger = django_filters.ChoiceFilter(field_name="trigger_kind", choices=TriggerKind.choices)
    # `from` is a keyword, so the two bounds are added below under their API names.

    class Meta:
        model = Run
        fields: list[str] = []


RunFilter.base_filters["from"] = django_filters.IsoDateTimeFilter(
    field_name="created_at", lookup_expr="gte"
)
RunFilter.base_filters["to"] = django_filters.IsoDateTimeFilter(
    field_name="created_at", lookup_expr="lte"
)
