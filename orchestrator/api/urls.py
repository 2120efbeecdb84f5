from __future__ import annotations

from rest_framework.routers import SimpleRouter

from orchestrator.api.library_views import AgentViewSet, CredentialViewSet, GroupViewSet
from orchestrator.api.orchestration_views import OrchestrationViewSet


class OptionalSlashRouter(SimpleRouter):
    """API.md paths have no trailing slash; accept both rather than redirect a POST."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("orchestrations", OrchestrationViewSet, basename="orchestration")
router.register("agents", AgentViewSet, basename="agent")
router.register("groups", GroupViewSet, basename="group")
router.register("credentials", CredentialViewSet, basename="credential")

urlpatterns = router.urls
