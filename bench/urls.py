"""The product's URLs plus the plain DRF runs list (`bench.plain`), for the benchmark's server
only: bench.settings points ROOT_URLCONF here, config.settings never does."""

from __future__ import annotations

from django.urls import path

from bench.plain.views import PlainRunViewSet
from config.urls import handler404, handler500
from config.urls import urlpatterns as product_urlpatterns

PLAIN_RUNS_PATH = "bench/plain/runs"

urlpatterns = [
    path(PLAIN_RUNS_PATH, PlainRunViewSet.as_view({"get": "list"}), name="bench-plain-runs"),
    *product_urlpatterns,
]

__all__ = ["handler404", "handler500", "urlpatterns"]
