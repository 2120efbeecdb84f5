"""The runs list as DRF's documentation would write it: a `ModelSerializer` of the run's plain
columns and a `ModelViewSet`, with DRF's stock renderer, cursor pagination and permission.

Two choices keep the comparison about the list rather than its surroundings:

- Authentication is the product's `BearerTokenAuthentication`, not DRF's `TokenAuthentication`:
  DRF's tokens belong to users (the authtoken app's table), ours to an organization, which is what
  scopes the rows. One lookup of an indexed token hash either way, so both lists pay the same.
- Pagination is DRF's `CursorPagination` (50 a page, newest first, as the product's list): DRF's
  limit/offset or page-number pagination would also count the organization's runs on every page,
  work the product's list does not do.

Filters and the rate limit are left off, as in a plain `ModelViewSet`: the product's list carries
them and still has to keep up.
"""

from __future__ import annotations

from rest_framework import permissions, serializers, viewsets
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import JSONRenderer

from core.auth import BearerTokenAuthentication
from runs.models import Run


class PlainRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = [
            "id",
            "orchestration",
            "version",
            "status",
            "entry_step",
            "input",
            "output",
            "output_type",
            "shared_state",
            "error",
            "replays_run",
            "parent_run",
            "depth",
            "cost_usd",
            "steps_completed",
            "steps_total",
            "metadata",
            "requested_by_name",
            "refine_status",
            "refine_error",
            "created_at",
            "started_at",
            "finished_at",
        ]


class PlainPagination(CursorPagination):
    page_size = 50
    ordering = "-created_at"


class PlainRunViewSet(viewsets.ModelViewSet):
    serializer_class = PlainRunSerializer
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [permissions.IsAuthenticated]
    renderer_classes = [JSONRenderer]
    pagination_class = PlainPagination
    filter_backends: list = []
    throttle_classes: list = []

    def get_queryset(self):
        return Run.objects.filter(organization=self.request.auth.organization)
