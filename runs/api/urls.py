from __future__ import annotations

from django.urls import re_path

from core.api.routers import OptionalSlashRouter
from core.api.schema import documented_as
from runs.api import streaming
from runs.api.mcp_views import McpServerViewSet
from runs.api.model_views import ModelListView
from runs.api.output_views import RunOutputViewSet
from runs.api.views import OrchestrationRunViewSet, RunViewSet
from runs.api.webhook_views import WebhookView

router = OptionalSlashRouter()
router.register("runs", RunViewSet, basename="run")
router.register("mcp-servers", McpServerViewSet, basename="mcp-server")

orchestration_run = OrchestrationRunViewSet.as_view({"get": "retrieve", "delete": "destroy"})
orchestration_replay = OrchestrationRunViewSet.as_view({"post": "replay"})
run_share = RunOutputViewSet.as_view({"post": "share", "delete": "unshare"})
run_refine = RunOutputViewSet.as_view({"post": "refine"})
run_versions = RunOutputViewSet.as_view({"get": "versions"})
run_version = RunOutputViewSet.as_view({"get": "version"})

urlpatterns = [
    re_path(
        r"^webhooks/(?P<orchestration_id>[^/]+)/(?P<token>[^/]+)/?$",
        WebhookView.as_view(),
        name="webhook",
    ),
    re_path(
        r"^orchestrations/(?P<orchestration_pk>[^/]+)/runs/?$",
        documented_as(streaming.runs_collection, streaming.collection),
        name="orchestration-runs",
    ),
    re_path(
        r"^orchestrations/(?P<orchestration_pk>[^/]+)/runs/stream/?$",
        streaming.fire_stream,
        name="orchestration-runs-stream",
    ),
    re_path(
        r"^orchestrations/(?P<orchestration_pk>[^/]+)/runs/(?P<pk>[^/]+)/replay/?$",
        orchestration_replay,
        name="orchestration-run-replay",
    ),
    re_path(
        r"^orchestrations/(?P<orchestration_pk>[^/]+)/runs/(?P<pk>[^/]+)/?$",
        orchestration_run,
        name="orchestration-run-detail",
    ),
    re_path(
        r"^runs/(?P<pk>[^/]+)/events/stream/?$", streaming.events_stream, name="run-events-stream"
    ),
    re_path(r"^models/?$", ModelListView.as_view(), name="models"),
    re_path(r"^runs/(?P<pk>[^/]+)/share/?$", run_share, name="run-share"),
    re_path(r"^runs/(?P<pk>[^/]+)/refine/?$", run_refine, name="run-refine"),
    re_path(r"^runs/(?P<pk>[^/]+)/versions/?$", run_versions, name="run-versions"),
    re_path(r"^runs/(?P<pk>[^/]+)/versions/(?P<number>[^/]+)/?$", run_version, name="run-version"),
    *router.urls,
]
