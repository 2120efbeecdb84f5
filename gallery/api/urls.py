from __future__ import annotations

from gallery.api.views import GalleryViewSet
from orchestrator.api.urls import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("gallery", GalleryViewSet, basename="gallery")

urlpatterns = router.urls
