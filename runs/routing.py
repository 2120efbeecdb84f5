from __future__ import annotations

from django.urls import path

from runs.consumers import RunTraceConsumer

websocket_urlpatterns = [
    path("ws/runs/<str:run_id>/", RunTraceConsumer.as_asgi()),
]
