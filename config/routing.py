"""Websocket routes of every app, gathered in one list for config.asgi."""

from __future__ import annotations

from runs.routing import websocket_urlpatterns as runs_routes

websocket_urlpatterns: list = [*runs_routes]
