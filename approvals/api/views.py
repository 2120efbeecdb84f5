"""The approvals inbox API, and answering a paused run through the runs API."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from approvals import services
from approvals.api.serializers import (
    ApprovalSerializer,
    DecisionSerializer,
    ResumeSerializer,
    StepApproveSerializer,
)
from approvals.filtersets import ApprovalFilter
from approvals.models import YES_NO_KINDS, Approval, ApprovalStatus
from core.api.schema import error
from core.domain_errors import Conflict, InvalidRequest
from runs.api.serializers import RunSerializer
from runs.models import Run

DECIDED = {
    200: ApprovalSerializer,
    409: error("`conflict`: the approval is not pending."),
}
RunAccepted = inline_serializer("RunAccepted", {"run_id": serializers.UUIDField()})
RESUMED = {
    200: RunSerializer,
    202: PolymorphicProxySerializer(
        component_name="ResumeAccepted",
        serializers=[RunAccepted, RunSerializer],
        resource_type_field_name=None,
    ),
    409: error("`conflict`: nothing in this run is waiting for an answer."),
}


def _approval_or_404(request, key: str) -> Approval:
    try:
        approval_id = uuid.UUID(key)
    except ValueError:
        raise NotFound(f"No approval '{key}' in this organization.") from None
    found = Approval.objects.filter(organization=request.auth.organization, pk=approval_id).first()
    if found is None:
        raise NotFound(f"No approval '{key}' in this organization.")
    return found


def _run_or_404(request, key: str) -> Run:
    try:
        run_id = uuid.UUID(key)
    except ValueError:
        raise NotFound(f"No run '{key}' in this organization.") from None
    run = Run.objects.filter(organization=request.auth.organization, pk=run_id).first()
    if run is None:
        raise NotFound(f"No run '{key}' in this organization.")
    return run


@extend_schema(tags=["approvals"])
class ApprovalViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = ApprovalSerializer
    filterset_class = ApprovalFilter
    cursor_ordering = "-created_at"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Approval.objects.none()
        return Approval.objects.filter(organization=self.request.auth.organization).select_related(
            "run__orchestration"
        )

    def retrieve(self, request, pk=None):
        return Response(ApprovalSerializer(_approval_or_404(request, pk)).data)

    def _decide(self, request, pk: str, *, approve: bool) -> Response:
        approval = _approval_or_404(request, pk)
        serializer = DecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        decided = services.decide(
            approval.pk,
            approve=approve,
            user=request.user,
            comment=serializer.validated_data.get("comment", ""),
            response=serializer.validated_data.get("response"),
        )
        return Response(ApprovalSerializer(decided).data)

    @extend_schema(request=DecisionSerializer, responses=DECIDED)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(request, pk, approve=True)

    @extend_schema(request=DecisionSerializer, responses=DECIDED)
    @action(detail=True, methods=["post"])
    def deny(self, request, pk=None):
        return self._decide(request, pk, approve=False)


def pending_approval(run: Run, step_id: str | None) -> Approval:
    pending = Approval.objects.filter(run=run, status=ApprovalStatus.PENDING).order_by("created_at")
    if step_id:
        pending = pending.filter(step_id=step_id)
    found = pending.first()
    if found is None:
        where = f" at step '{step_id}'" if step_id else ""
        raise Conflict(f"Nothing is waiting for an answer in this run{where}.")
    return found


def answer(request, run: Run, data: dict) -> Approval:
    """`resume`: an approval or a tool call takes {"decision", "comment"}; a form takes its
    fields (or text)."""
    approval = pending_approval(run, data.get("step_id"))
    response = data["response"]
    if approval.kind in YES_NO_KINDS:
        decision = response.get("decision") if isinstance(response, dict) else response
        if decision not in ("approve", "deny"):
            raise InvalidRequest(
                f"This {approval.get_kind_display().lower()} is answered with "
                '{"decision": "approve" | "deny"}.',
                fields={"response.decision": ["must be approve or deny"]},
            )
        comment = response.get("comment", "") if isinstance(response, dict) else ""
        return services.decide(
            approval.pk,
            approve=decision == "approve",
            user=request.user,
            comment=str(comment or ""),
        )
    return services.decide(approval.pk, approve=True, user=request.user, response=response)


@extend_schema(tags=["runs"])
class RunAnswerViewSet(viewsets.GenericViewSet):
    """POST /runs/{id}/resume and /runs/{id}/steps/{step_id}/approve."""

    lookup_value_regex = "[^/]+"

    def get_object(self):
        """The run in the URL (404 when foreign): also what the role check looks up first."""
        return _run_or_404(self.request, self.kwargs["pk"])

    @extend_schema(
        request=ResumeSerializer,
        responses=RESUMED,
        description="Waits like a sync run: 200 with the run once it ended or paused again "
        '(202 if it is still going after SYNC_RUN_TIMEOUT_S); with `"async": true`, 202 '
        "`{run_id}` at once.",
    )
    def resume(self, request, pk=None):
        run = _run_or_404(request, pk)
        serializer = ResumeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        answer(request, run, serializer.validated_data)
        response = Response({"run_id": str(run.pk)}, status=status.HTTP_202_ACCEPTED)
        response.wait_for_run = None if serializer.validated_data["async"] else run.pk
        return response

    @extend_schema(
        request=StepApproveSerializer,
        responses={
            200: ApprovalSerializer,
            409: error("`conflict`: that step is not awaiting approval."),
        },
    )
    def approve_step(self, request, pk=None, step_id=None):
        run = _run_or_404(request, pk)
        serializer = StepApproveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        approval = Approval.objects.filter(
            run=run, step_id=step_id, kind__in=YES_NO_KINDS, status=ApprovalStatus.PENDING
        ).first()
        if approval is None:
            raise Conflict(f"Step '{step_id}' is not awaiting approval.")
        decided = services.decide(
            approval.pk,
            approve=serializer.validated_data["approved"],
            user=request.user,
            comment=serializer.validated_data.get("reason", ""),
        )
        return Response(ApprovalSerializer(decided).data)
