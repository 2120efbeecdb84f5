"""Orchestrations: CRUD with ETags, activate/pause, versions, diff, restore, compile."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F, Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from core.api.schema import BAD_NUMBER, error
from core.choices import Role
from core.domain_errors import PreconditionRequired
from core.params import integer_param
from orchestrator.api.serializers import (
    CompileSerializer,
    OrchestrationDetailSerializer,
    OrchestrationSerializer,
    OrchestrationUpdateSerializer,
    OrchestrationWriteSerializer,
    RenderMarkdownSerializer,
    VersionDetailSerializer,
    VersionSerializer,
)
from orchestrator.definition import compile_markdown
from orchestrator.filtersets import OrchestrationFilter, StrictBooleanField
from orchestrator.models import Orchestration, OrchestrationTag
from orchestrator.services import definitions
from orchestrator.services import orchestrations as service

VERSION_NUMBER = OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH)
IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="The ETag you last read; 412 when stale, 428 when missing.",
)


# The answers of a write guarded by If-Match (API.md: 428 without it, 412 when stale).
GUARDED_WRITE = {
    200: OrchestrationDetailSerializer,
    412: error("`version_conflict`: If-Match does not match the current ETag."),
    428: error("`precondition_required`: If-Match is missing."),
}


def _etag_header(orchestration: Orchestration) -> dict[str, str]:
    return {"ETag": f'"{orchestration.etag}"'}


def purge_requested(request) -> bool:
    """`?purge=` read strictly: a value that is not true or false (`yes`) is refused rather
    than taken for a soft delete the caller did not ask for."""
    value = request.query_params.get("purge")
    if value is None:
        return False
    try:
        return StrictBooleanField().to_python(value) or False
    except DjangoValidationError as exc:
        raise ValidationError({"purge": exc.messages}) from None


def attach_tag_names(orchestrations: list[Orchestration]) -> None:
    """The tags of a page's orchestrations, in one query of names: a prefetch of the tag rows
    built a model object per tag and cost a third of the whole request."""
    names: dict = {orchestration.pk: [] for orchestration in orchestrations}
    rows = (
        OrchestrationTag.objects.filter(orchestration_id__in=list(names))
        .order_by("orchestration_id", "position")
        .values_list("orchestration_id", "name")
    )
    for orchestration_id, name in rows:
        names[orchestration_id].append(name)
    for orchestration in orchestrations:
        orchestration.tag_names = names[orchestration.pk]


@extend_schema(tags=["orchestrations"])
class OrchestrationViewSet(viewsets.GenericViewSet):
    serializer_class = OrchestrationSerializer
    filterset_class = OrchestrationFilter
    lookup_value_regex = "[^/]+"
    cursor_ordering = "-created_at"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Orchestration.objects.none()
        everything = Orchestration.objects.filter(organization=self.request.auth.organization)
        # A purge also reaches soft-deleted ones: it is how they go for good.
        queryset = (
            (everything if self._purging() else everything.alive())
            # to_attr: a plain list per orchestration; the default cache clones a queryset
            # per row, which cost more than the query itself.
            .prefetch_related(
                Prefetch(
                    "tag_rows",
                    queryset=OrchestrationTag.objects.only("orchestration_id", "name"),
                    to_attr="tag_list",
                )
            )
        )
        if self.action == "list":
            # Neither the two large columns, which only the detail view shows, nor the owner's
            # user row for its username.
            return queryset.defer("definition", "markdown").annotate(
                owner_username=F("owner__username")
            )
        queryset = queryset.select_related("owner")
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("triggers")
        return queryset

    def required_role(self, request) -> str:
        if request.method == "DELETE" and purge_requested(request):
            return Role.ADMIN
        if request.method in ("GET", "HEAD", "OPTIONS") or self.action in (
            "compile",
            "render_markdown",
        ):
            return Role.VIEWER
        return Role.EDITOR

    def _purging(self) -> bool:
        return self.action == "destroy" and purge_requested(self.request)

    def get_object(self) -> Orchestration:
        key = self.kwargs["pk"]
        found = self.get_queryset().by_key(key)
        if found is None:
            raise NotFound(f"No orchestration '{key}' in this organization.")
        return found

    def _detail(self, orchestration: Orchestration, code: int = status.HTTP_200_OK) -> Response:
        secrets = getattr(orchestration, "new_trigger_secrets", {})
        orchestration = self.get_queryset().prefetch_related("triggers").get(pk=orchestration.pk)
        data = OrchestrationDetailSerializer(orchestration, context={"request": self.request}).data
        for trigger in data["triggers"]:
            trigger["signing_secret"] = secrets.get(trigger["id"])
        return Response(data, status=code, headers=_etag_header(orchestration))

    def _create_data(self) -> dict:
        serializer = OrchestrationWriteSerializer(
            data=self.request.data, context={"request": self.request}
        )
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def _update_data(self, orchestration: Orchestration) -> dict:
        serializer = OrchestrationUpdateSerializer(
            data=self.request.data,
            partial=True,
            context={"request": self.request, "orchestration_id": orchestration.pk},
        )
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def _if_match(self) -> str:
        value = self.request.headers.get("If-Match")
        if not value:
            raise PreconditionRequired()
        return value

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "metadata",
                OpenApiTypes.STR,
                many=True,
                description="key:value, repeatable; all must hold",
            ),
        ]
    )
    def list(self, request):
        queryset = self.filter_queryset(self.get_queryset()).prefetch_related(None)
        page = self.paginate_queryset(queryset)
        attach_tag_names(page)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(responses=OrchestrationDetailSerializer)
    def retrieve(self, request, pk=None):
        orchestration = self.get_object()
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match and service.etag_matches(orchestration, if_none_match):
            return Response(
                status=status.HTTP_304_NOT_MODIFIED, headers=_etag_header(orchestration)
            )
        return self._detail(orchestration)

    @extend_schema(
        request=OrchestrationWriteSerializer, responses={201: OrchestrationDetailSerializer}
    )
    def create(self, request):
        data = self._create_data()
        orchestration = service.create_orchestration(
            request.auth.organization, data, user=request.user
        )
        return self._detail(orchestration, status.HTTP_201_CREATED)

    @extend_schema(
        request=OrchestrationUpdateSerializer, responses=GUARDED_WRITE, parameters=[IF_MATCH]
    )
    def update(self, request, pk=None):
        orchestration = self.get_object()
        if_match = self._if_match()
        data = self._update_data(orchestration)
        updated = service.update_orchestration(
            orchestration, data, if_match=if_match, replace=True, user=request.user
        )
        return self._detail(updated)

    @extend_schema(
        request=OrchestrationUpdateSerializer, responses=GUARDED_WRITE, parameters=[IF_MATCH]
    )
    def partial_update(self, request, pk=None):
        orchestration = self.get_object()
        if_match = self._if_match()
        data = self._update_data(orchestration)
        updated = service.update_orchestration(
            orchestration, data, if_match=if_match, replace=False, user=request.user
        )
        return self._detail(updated)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "purge",
                OpenApiTypes.BOOL,
                description=(
                    "Remove it and its runs for good (admin role), also after a soft delete "
                    "(then by its id: its slug went to the living ones)."
                ),
            ),
        ],
        responses={204: None, 400: error("`validation_error`: `purge` is not true or false.")},
    )
    def destroy(self, request, pk=None):
        orchestration = self.get_object()
        if purge_requested(request):
            service.purge(orchestration)
        else:
            service.soft_delete(orchestration)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=OrchestrationDetailSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        return self._detail(service.activate(self.get_object()))

    @extend_schema(request=None, responses=OrchestrationDetailSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._detail(service.pause(self.get_object()))

    @extend_schema(request=CompileSerializer, responses=OpenApiTypes.OBJECT)
    @action(detail=False, methods=["post"])
    def compile(self, request):
        serializer = CompileSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(compile_markdown(serializer.validated_data["markdown"]).to_dict())

    @extend_schema(request=RenderMarkdownSerializer, responses=OpenApiTypes.OBJECT)
    @action(detail=False, methods=["post"], url_path="render-markdown")
    def render_markdown(self, request):
        """The definition as a markdown document, with warnings about what markdown leaves out."""
        serializer = RenderMarkdownSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return Response(
            definitions.render_markdown(data["name"], data["description"], data["definition"])
        )

    @extend_schema(responses=VersionSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], cursor_ordering="-version")
    def versions(self, request, pk=None):
        orchestration = self.get_object()
        page = self.paginate_queryset(orchestration.versions.select_related("created_by"))
        return self.get_paginated_response(VersionSerializer(page, many=True).data)

    @extend_schema(
        parameters=[VERSION_NUMBER], responses={200: VersionDetailSerializer, 400: BAD_NUMBER}
    )
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>[^/]+)")
    def version(self, request, pk=None, number=None):
        number = integer_param(number, "number")
        orchestration = self.get_object()
        found = orchestration.versions.select_related("created_by").filter(version=number).first()
        if found is None:
            raise NotFound(f"There is no version {number} of this orchestration.")
        return Response(VersionDetailSerializer(found).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("a", OpenApiTypes.INT, OpenApiParameter.PATH),
            OpenApiParameter("b", OpenApiTypes.INT, OpenApiParameter.PATH),
        ],
        responses={200: OpenApiTypes.OBJECT, 400: BAD_NUMBER},
    )
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<a>[^/]+)/diff/(?P<b>[^/]+)")
    def diff(self, request, pk=None, a=None, b=None):
        first, second = integer_param(a, "a"), integer_param(b, "b")
        return Response(service.diff_versions(self.get_object(), first, second))

    @extend_schema(
        request=None,
        parameters=[VERSION_NUMBER],
        responses={200: OrchestrationDetailSerializer, 400: BAD_NUMBER},
    )
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<number>[^/]+)/restore")
    def restore(self, request, pk=None, number=None):
        number = integer_param(number, "number")
        orchestration = self.get_object()
        if not orchestration.versions.filter(version=number).exists():
            raise NotFound(f"There is no version {number} of this orchestration.")
        return self._detail(service.restore_version(orchestration, number, user=request.user))
