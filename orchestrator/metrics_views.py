"""`GET /metrics` for Prometheus and `GET /grafana.json`, the dashboard over its series.

Plain Django views: a scraper is neither a browser session nor an API client of one
organization, and the series cover every organization, so only an instance-wide credential
opens them: the METRICS_TOKEN setting, or a service-account token with the admin role.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from rest_framework.exceptions import APIException

from orchestrator import metrics
from orchestrator.api.errors import json_error
from orchestrator.auth import tenant_for_token, token_from_header
from orchestrator.choices import Role
from orchestrator.grafana import dashboard


def _refusal(request: HttpRequest) -> JsonResponse | None:
    """None when the bearer token may read metrics, else the 401 or 403 to answer with."""
    try:
        raw = token_from_header(request)
        if raw is None:
            return _unauthorized("Send Authorization: Bearer <metrics token>.")
        if settings.METRICS_TOKEN and hmac.compare_digest(
            raw.encode(), settings.METRICS_TOKEN.encode()
        ):
            return None
        _, tenant = tenant_for_token(raw)
    except APIException as exc:
        return _unauthorized(str(exc.detail))
    if tenant.token.user_id is not None or tenant.role != Role.ADMIN:
        return json_error(
            "forbidden", "Metrics need a service-account token with the admin role.", 403
        )
    return None


def _unauthorized(detail: str) -> JsonResponse:
    response = json_error("unauthorized", detail, 401)
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@require_GET
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    refused = _refusal(request)
    if refused is not None:
        return refused
    # The 0.0.4 text format: what every Prometheus version and agent reads.
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)


@require_GET
def grafana_dashboard(request: HttpRequest) -> JsonResponse:
    """No credential needed: the dashboard holds queries, not data."""
    return JsonResponse(dashboard())
