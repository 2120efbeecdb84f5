from __future__ import annotations

from core.api.routers import OptionalSlashRouter
from gallery.api.views import GalleryViewSet

router = OptionalSlashRouter()
router.register("gallery", GalleryViewSet, basename="gallery")

urlpatterns = router.urls
