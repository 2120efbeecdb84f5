"""`GET /metrics` for Prometheus and `GET /grafana.json`, the dashboard over its series.

Plain Django views: a scraper is not a browser session. The METRICS_TOKEN setting (the
operator's) reads the series of the whole instance; a service-account token with the admin role
reads the same series over its own organization's rows, never another's.
"""

from __future__ import annotations

import hmac
from uuid import UUID

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from rest_framework.exceptions import APIException

from core.auth import tenant_for_token, token_from_header
from core.choices import Role
from core.errors import json_error
from runs import metrics
from runs.grafana import dashboard


class _Refused(Exception):
    def __init__(self, response: JsonResponse) -> None:
        self.response = response


def _scope(request: HttpRequest) -> UUID | None:
    """What the bearer token may read: None for the whole instance (METRICS_TOKEN), else the id
    of its organization; raises `_Refused` with the 401 or 403 to answer otherwise."""
    try:
        raw = token_from_header(request)
        if raw is None:
            raise _Refused(_unauthorized("Send Authorization: Bearer <metrics token>."))
        if settings.METRICS_TOKEN and hmac.compare_digest(
            raw.encode(), settings.METRICS_TOKEN.encode()
        ):
            return None
        _, tenant = tenant_for_token(raw)
    except APIException as exc:
        raise _Refused(_unauthorized(str(exc.detail))) from None
    if tenant.token.user_id is not None or tenant.role != Role.ADMIN:
        raise _Refused(
            json_error(
                "forbidden",
                "Metrics need the METRICS_TOKEN, or a service-account token with the admin "
                "role (its organization's series).",
                403,
            )
        )
    return tenant.organization.pk


def _unauthorized(detail: str) -> JsonResponse:
    response = json_error("unauthorized", detail, 401)
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@require_GET
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    try:
        organization_id = _scope(request)
    except _Refused as refused:
        return refused.response
    # The 0.0.4 text format: what every Prometheus version and agent reads.
    return HttpResponse(metrics.exposition(organization_id), content_type=CONTENT_TYPE_PLAIN_0_0_4)


@require_GET
def grafana_dashboard(request: HttpRequest) -> JsonResponse:
    """No credential needed: the dashboard holds queries, not data."""
    return JsonResponse(dashboard())
