from __future__ import annotations

from django.urls import path

from runs import dashboard, pages

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("runs/<uuid:pk>/", pages.run_view, name="run-view"),
    path("runs/<uuid:pk>/outputs/", pages.rendered_outputs, name="run-outputs"),
]
