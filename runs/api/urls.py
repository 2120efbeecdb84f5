from __future__ import annotations

from django.urls import re_path

from orchestrator.api.urls import OptionalSlashRouter
from runs.api import streaming
from runs.api.views import OrchestrationRunViewSet, RunViewSet

router = OptionalSlashRouter()
router.register("runs", RunViewSet, basename="run")

orchestration_run = OrchestrationRunViewSet.as_view({"get": "retrieve", "delete": "destroy"})
orchestration_replay = OrchestrationRunViewSet.as_view({"post": "replay"})

urlpatterns = [
    re_path(
        r"^orchestrations/(?P<orchestration_pk>[^/]+)/runs/?$",
        streaming.runs_collection,
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
    *router.urls,
]
