"""Websocket routes of every app, gathered in one list for config.asgi."""

from __future__ import annotations

websocket_urlpatterns: list = []
