from __future__ import annotations

import django_filters

from approvals.models import Approval, ApprovalStatus
from orchestrator.filtersets import StrictBooleanFilter


class ApprovalFilter(django_filters.FilterSet):
    pending = StrictBooleanFilter(method="filter_pending")
    status = django_filters.ChoiceFilter(choices=ApprovalStatus.choices)
    orchestration = django_filters.UUIDFilter(field_name="run__orchestration_id")
    run = django_filters.UUIDFilter(field_name="run_id")

    class Meta:
        model = Approval
        fields: list[str] = []

    def filter_pending(self, queryset, name, value):
        if value:
            return queryset.filter(status=ApprovalStatus.PENDING)
        return queryset.exclude(status=ApprovalStatus.PENDING)
