from __future__ import annotations

from django.urls import re_path

from approvals.api import streaming
from approvals.api.views import ApprovalViewSet, RunAnswerViewSet
from core.api.routers import OptionalSlashRouter
from core.api.schema import documented_as

router = OptionalSlashRouter()
router.register("approvals", ApprovalViewSet, basename="approval")

approve_step = RunAnswerViewSet.as_view({"post": "approve_step"})

urlpatterns = [
    re_path(
        r"^runs/(?P<pk>[^/]+)/resume/?$",
        documented_as(streaming.resume, RunAnswerViewSet.as_view({"post": "resume"})),
        name="run-resume",
    ),
    re_path(
        r"^runs/(?P<pk>[^/]+)/resume/stream/?$", streaming.resume_stream, name="run-resume-stream"
    ),
    re_path(
        r"^runs/(?P<pk>[^/]+)/steps/(?P<step_id>[^/]+)/approve/?$",
        approve_step,
        name="run-step-approve",
    ),
    *router.urls,
]
