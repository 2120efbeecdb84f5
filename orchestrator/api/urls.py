from __future__ import annotations

from django.urls import re_path

from core.api.routers import OptionalSlashRouter
from orchestrator.api.library_views import AgentViewSet, CredentialViewSet, GroupViewSet
from orchestrator.api.orchestration_views import OrchestrationViewSet
from orchestrator.api.templates_views import StarterTemplateViewSet
from orchestrator.api.token_views import TokenViewSet
from orchestrator.api.trigger_views import OrchestrationTriggerViewSet, TriggerViewSet

router = OptionalSlashRouter()
router.register("orchestrations", OrchestrationViewSet, basename="orchestration")
router.register("agents", AgentViewSet, basename="agent")
router.register("groups", GroupViewSet, basename="group")
router.register("credentials", CredentialViewSet, basename="credential")
router.register("triggers", TriggerViewSet, basename="trigger")
router.register("templates", StarterTemplateViewSet, basename="template")
router.register("tokens", TokenViewSet, basename="token")

orchestration_triggers = OrchestrationTriggerViewSet.as_view({"get": "list", "post": "create"})

urlpatterns = [
    re_path(
        r"^orchestrations/(?P<orchestration_pk>[^/]+)/triggers/?$",
        orchestration_triggers,
        name="orchestration-triggers",
    ),
    *router.urls,
]
