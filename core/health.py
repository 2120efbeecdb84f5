"""Liveness (no database) and readiness (database and broker answer) for load balancers."""

from __future__ import annotations

from celery import current_app
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def _database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver error means "not ready"
        return f"database: {exc.__class__.__name__}: {exc}"
    return None


def _broker() -> str | None:
    try:
        # The project's Celery app (config/celery.py), current once the project's package loads.
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # kombu raises many transport-specific errors
        return f"broker: {exc.__class__.__name__}: {exc}"
    return None


def readyz(request: HttpRequest) -> JsonResponse:
    failures = [problem for problem in (_database(), _broker()) if problem]
    if failures:
        return JsonResponse({"status": "unavailable", "failures": failures}, status=503)
    return JsonResponse({"status": "ok"})
