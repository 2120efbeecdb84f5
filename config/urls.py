from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.health import healthz, readyz
from gallery import pages as gallery_pages
from gallery.share_pages import shared_output
from orchestrator import template_pages
from runs.metrics_views import grafana_dashboard, prometheus_metrics

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", prometheus_metrics, name="metrics"),
    path("grafana.json", grafana_dashboard, name="grafana-dashboard"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/v1/", include("approvals.api.urls")),
    path("api/v1/", include("runs.api.urls")),
    path("api/v1/", include("orchestrator.api.urls")),
    path("api/v1/", include("gallery.api.urls")),
    path("admin/", admin.site.urls),
    path("", include("orchestrator.pages.urls")),
    path("", include("runs.page_urls")),
    path("", include("approvals.page_urls")),
    path("s/<str:token>", shared_output, name="shared-output"),
    path("templates/", template_pages.template_list, name="templates"),
    path("templates/<slug:template_id>/use/", template_pages.use_template, name="use-template"),
    path("gallery/", gallery_pages.gallery_list, name="gallery"),
    path("gallery/<uuid:pk>/", gallery_pages.gallery_detail, name="gallery-detail"),
    path("gallery/<uuid:pk>/fork/", gallery_pages.gallery_fork, name="gallery-fork"),
]

handler404 = "core.errors.handler404"
handler500 = "core.errors.handler500"
