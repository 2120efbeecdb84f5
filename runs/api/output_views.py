"""A run's output after it ended: share links, refine, and the versions refining keeps."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from core.api.schema import BAD_NUMBER, error
from core.params import integer_param
from runs.api.serializers import (
    OutputVersionDetailSerializer,
    OutputVersionSerializer,
    RefineSerializer,
)
from runs.api.views import RunQuerysetMixin
from runs.services import outputs

ShareUrl = inline_serializer("ShareUrl", {"share_url": serializers.URLField()})
RefineAccepted = inline_serializer("RefineAccepted", {"status": serializers.CharField()})
VersionList = inline_serializer(
    "OutputVersionList", {"versions": OutputVersionSerializer(many=True)}
)


@extend_schema(tags=["runs"])
class RunOutputViewSet(RunQuerysetMixin, viewsets.GenericViewSet):
    """Routed by hand in runs/api/urls.py, one method per verb (POST/DELETE) of a path.

    Share and refine need the editor role, the versions the viewer role (the defaults for
    unsafe and safe methods).
    """

    pagination_class = None

    def get_queryset(self):
        return self.base_queryset()

    @extend_schema(
        request=None,
        responses={201: ShareUrl, 200: ShareUrl},
        description="Idempotent: the same URL until it is revoked. 201 when a link was made.",
    )
    def share(self, request, pk=None):
        link, created = outputs.share(self.get_run(pk))
        url = request.build_absolute_uri(reverse("shared-output", args=[link.token]))
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response({"share_url": url}, status=code)

    @extend_schema(request=None, responses={204: None}, description="204 also when not shared.")
    def unshare(self, request, pk=None):
        outputs.unshare(self.get_run(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=RefineSerializer,
        responses={
            202: RefineAccepted,
            409: error("`conflict`: the run has not succeeded, or is being refined already."),
        },
    )
    def refine(self, request, pk=None):
        run = self.get_run(pk)
        body = RefineSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        outputs.refine(run, body.validated_data["prompt"], requested_by=request.user)
        return Response({"status": "refining"}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(operation_id="runs_versions_list", responses=VersionList)
    def versions(self, request, pk=None):
        found = outputs.versions(self.get_run(pk))
        return Response({"versions": OutputVersionSerializer(found, many=True).data})

    @extend_schema(
        operation_id="runs_versions_retrieve",
        parameters=[OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH)],
        responses={200: OutputVersionDetailSerializer, 400: BAD_NUMBER},
    )
    def version(self, request, pk=None, number=None):
        number = integer_param(number, "number")
        found = outputs.version(self.get_run(pk), number)
        if found is None:
            raise NotFound(f"This run has no output version {number}.")
        return Response(OutputVersionDetailSerializer(found).data)
