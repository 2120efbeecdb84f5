"""Runs: fire, list, trace, events, replay, cancel, diff. Views validate and call services."""

from __future__ import annotations

import uuid

from django.db.models import F
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from core.api.schema import error
from core.params import integer_param, refuse_unknown_params
from orchestrator.choices import TriggerKind
from orchestrator.models import Orchestration
from runs.api.serializers import (
    EventSerializer,
    FireSerializer,
    ReplaySerializer,
    RunSerializer,
    prefetch_human_input,
    step_rows,
)
from runs.filtersets import RunFilter
from runs.models import Run, RunEvent
from runs.services import creation, lifecycle
from runs.services.comparison import compare_runs
from runs.services.graphs import definition_of, graph_of

EVENTS_PAGE = 500
# What a run's events list and its stream read of the query (Last-Event-ID is a header).
EVENTS_PARAMS = ("after",)

EventPage = inline_serializer(
    "EventPage",
    {
        "items": EventSerializer(many=True),
        "next_after": serializers.IntegerField(
            allow_null=True, help_text="The `after` of the next page; null on the last one."
        ),
    },
)
REPLAYED = {
    202: RunSerializer,
    400: error(
        "`validation_error`: `from_step` is no step of the current version, or is neither the "
        "run's entry step nor downstream of it."
    ),
    409: error(
        "`orchestration_not_active`: the run's orchestration was deleted or is not active; "
        "`conflict`: the current version no longer has the run's entry step."
    ),
}
CANCELLED = {
    202: RunSerializer,
    409: error("`conflict`: the run already ended."),
}


def run_detail(run: Run) -> dict:
    data = RunSerializer(run).data
    data["steps"] = step_rows(run, definition_of(run), graph_of(run).order)
    return data


def orchestration_for(request, key: str) -> Orchestration:
    """The orchestration of a nested run route, deleted ones included: after a soft delete its
    runs stay readable and cancellable here, and firing or replaying answers 409
    `orchestration_not_active` (lifecycle) rather than 404."""
    found = Orchestration.objects.filter(organization=request.auth.organization).by_key(key)
    if found is None:
        raise NotFound(f"No orchestration '{key}' in this organization.")
    return found


def fire_from_request(request, orchestration: Orchestration) -> tuple[Run, bool, bool]:
    """Validate a fire body and start the run. Returns (run, created, wait)."""
    serializer = FireSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    body = serializer.validated_data
    run_input = creation.input_with_message(orchestration, body.get("input"), body.get("message"))
    kind = TriggerKind.API if request.auth.token is not None else TriggerKind.MANUAL
    run, created = lifecycle.fire(
        orchestration,
        run_input,
        trigger_kind=kind,
        requested_by=request.user,
        metadata=body.get("metadata"),
        idempotency_key=request.headers.get("Idempotency-Key", ""),
        caller=caller_of(request),
    )
    return run, created, not body["async"]


def caller_of(request) -> str:
    """Whose Idempotency-Key this is: the token's, or the signed-in user's (the browser)."""
    token = request.auth.token
    return f"token:{token.pk}" if token is not None else f"user:{request.user.pk}"


class RunQuerysetMixin:
    filterset_class = RunFilter
    serializer_class = RunSerializer
    cursor_ordering = "-created_at"
    lookup_value_regex = "[^/]+"

    def base_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Run.objects.none()
        return Run.objects.filter(organization=self.request.auth.organization).select_related(
            "orchestration"
        )

    def get_object(self):
        """The run (or, on a collection, the orchestration) in the URL: 404 when foreign, and
        looked up before the role check."""
        if "pk" in self.kwargs:
            return self.get_run(self.kwargs["pk"])
        return orchestration_for(self.request, self.kwargs["orchestration_pk"])

    def get_run(self, key: str) -> Run:
        try:
            run_id = uuid.UUID(str(key))
        except ValueError:
            raise NotFound(f"No run '{key}' in this organization.") from None
        run = self.get_queryset().prefetch_related("step_runs").filter(pk=run_id).first()
        if run is None:
            raise NotFound(f"No run '{key}' in this organization.")
        return run

    def list(self, request, *args, **kwargs):
        # Of the orchestration the list shows only the name: join for that column alone
        # rather than load every orchestration with its definition.
        queryset = (
            self.filter_queryset(self.get_queryset())
            .select_related(None)
            .annotate(orchestration_name=F("orchestration__name"))
        )
        page = self.paginate_queryset(queryset)
        prefetch_human_input(page)
        return self.get_paginated_response(RunSerializer(page, many=True).data)

    def _replay(self, request, run: Run) -> Response:
        serializer = ReplaySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        new = lifecycle.replay(
            run, from_step=serializer.validated_data.get("from_step"), requested_by=request.user
        )
        return Response(RunSerializer(new).data, status=status.HTTP_202_ACCEPTED)

    def _cancel(self, run: Run) -> Response:
        lifecycle.cancel(run)
        run.refresh_from_db()
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["runs"])
class RunViewSet(RunQuerysetMixin, viewsets.GenericViewSet):
    """Every run of the organization, newest first."""

    def get_queryset(self):
        return self.base_queryset()

    @extend_schema(responses=RunSerializer)
    def retrieve(self, request, pk=None):
        return Response(run_detail(self.get_run(pk)))

    @extend_schema(request=None, responses=CANCELLED)
    def destroy(self, request, pk=None):
        return self._cancel(self.get_run(pk))

    @extend_schema(request=None, responses=CANCELLED)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._cancel(self.get_run(pk))

    @extend_schema(request=ReplaySerializer, responses=REPLAYED)
    @action(detail=True, methods=["post"])
    def replay(self, request, pk=None):
        return self._replay(request, self.get_run(pk))

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def steps(self, request, pk=None):
        run = self.get_run(pk)
        return Response({"steps": step_rows(run, definition_of(run), graph_of(run).order)})

    @extend_schema(
        parameters=[OpenApiParameter("after", OpenApiTypes.INT, description="Last seq seen.")],
        responses=EventPage,
        filters=False,
    )
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        run = self.get_run(pk)
        refuse_unknown_params(request.query_params, EVENTS_PARAMS)
        after = integer_param(request.query_params.get("after", "0"), "after")
        events = RunEvent.objects.filter(run=run, seq__gt=after).order_by("seq")[:EVENTS_PAGE]
        items = EventSerializer(events, many=True).data
        more = len(items) == EVENTS_PAGE
        return Response({"items": items, "next_after": items[-1]["seq"] if more else None})

    @extend_schema(
        responses={
            200: OpenApiTypes.OBJECT,
            400: error("`validation_error`: the two runs are of different orchestrations."),
        }
    )
    @action(detail=True, methods=["get"], url_path=r"diff/(?P<other>[^/]+)")
    def diff(self, request, pk=None, other=None):
        return Response(compare_runs(self.get_run(pk), self.get_run(other)))


@extend_schema(tags=["runs"])
class OrchestrationRunViewSet(RunQuerysetMixin, viewsets.GenericViewSet):
    """Runs of one orchestration, and firing it."""

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Run.objects.none()
        orchestration = orchestration_for(self.request, self.kwargs["orchestration_pk"])
        return self.base_queryset().filter(orchestration=orchestration)

    @extend_schema(
        request=FireSerializer,
        responses={
            202: RunSerializer,
            200: RunSerializer,
            409: error(
                "`orchestration_not_active`: the orchestration is a draft, paused or deleted; "
                "`conflict`: the Idempotency-Key was used for another request in the last 24 h."
            ),
        },
        description='202 at once; with `"async": false`, 200 once the run ended or paused '
        "(202 if it is still going after SYNC_RUN_TIMEOUT_S).",
    )
    def create(self, request, orchestration_pk=None):
        orchestration = orchestration_for(request, orchestration_pk)
        run, _, wait = fire_from_request(request, orchestration)
        response = Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
        response.wait_for_run = run.pk if wait else None
        return response

    @extend_schema(responses=RunSerializer)
    def retrieve(self, request, orchestration_pk=None, pk=None):
        return Response(run_detail(self.get_run(pk)))

    @extend_schema(request=None, responses=CANCELLED)
    def destroy(self, request, orchestration_pk=None, pk=None):
        return self._cancel(self.get_run(pk))

    @extend_schema(request=ReplaySerializer, responses=REPLAYED)
    @action(detail=True, methods=["post"])
    def replay(self, request, orchestration_pk=None, pk=None):
        return self._replay(request, self.get_run(pk))
