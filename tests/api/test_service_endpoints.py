from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_healthz_answers_ok_without_the_database(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"


def test_readyz_checks_the_database_and_the_broker():
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok"}


def test_readyz_reports_a_broker_that_does_not_answer(settings):
    from config.celery import app

    # The embedded profile names its transport apart from the URL; the URL alone must decide here.
    transport = app.conf.broker_transport
    app.conf.broker_url, app.conf.broker_transport = "redis://127.0.0.1:1/0", None
    try:
        response = Client().get("/readyz")
    finally:
        app.conf.broker_url, app.conf.broker_transport = settings.CELERY_BROKER_URL, transport
    assert response.status_code == 503
    assert response.json()["failures"][0].startswith("broker:")


def test_the_openapi_schema_describes_the_api():
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert "/api/v1/orchestrations" in schema["paths"]
    assert "/api/v1/orchestrations/{id}/versions/{a}/diff/{b}" in schema["paths"]


def test_the_api_docs_load_their_assets_locally():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()
    assert "/static/drf_spectacular_sidecar/" in html
