from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from orchestrator.health import healthz, readyz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/v1/", include("approvals.api.urls")),
    path("api/v1/", include("runs.api.urls")),
    path("api/v1/", include("orchestrator.api.urls")),
    path("admin/", admin.site.urls),
]

handler404 = "orchestrator.api.errors.handler404"
handler500 = "orchestrator.api.errors.handler500"
