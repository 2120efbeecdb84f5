"""/grafana.json imports into Grafana as it is, and queries only series /metrics exposes."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from orchestrator.services.orchestrations import create_orchestration
from runs.services import lifecycle
from tests.metrics.scrape import scrape
from tests.runs.harness import drain

pytestmark = pytest.mark.django_db

SERIES = re.compile(r"\borchestrator_[a-z_]+\b")
EXPECTED_TITLES = {
    "Runs per second by status",
    "Run error rate",
    "Run duration",
    "Step duration by type",
    "Queue depth",
    "Pending approvals",
    "LLM tokens per hour by direction",
    "LLM cost per hour",
}


@pytest.fixture
def dashboard() -> dict:
    response = Client().get("/grafana.json")  # no credential: it holds queries, not data
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content)


def test_it_is_an_importable_dashboard_with_a_prometheus_input(dashboard):
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["uid"] and dashboard["title"] and dashboard["id"] is None
    assert [(i["name"], i["type"], i["pluginId"]) for i in dashboard["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")
    ]
    (variable,) = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "DS_PROMETHEUS",
        "datasource",
        "prometheus",
    )
    panels = dashboard["panels"]
    assert {p["title"] for p in panels} >= EXPECTED_TITLES
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert {t["refId"] for t in panel["targets"]} == {
            chr(ord("A") + i) for i in range(len(panel["targets"]))
        }


def test_no_two_panels_overlap_on_the_24_column_grid(dashboard):
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells


def test_every_query_uses_a_series_that_metrics_exposes(settings, org, dashboard):
    # One ended run with a step, so that the labelled series have samples to show.
    flow = create_orchestration(
        org,
        {
            "name": "One",
            "status": "active",
            "definition": {"nodes": [{"id": "a", "type": "transform", "config": {"output": 1}}]},
        },
    )
    lifecycle.fire(flow, {})
    drain()
    exposed = scrape(settings).names
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in SERIES.findall(target["expr"])
    }
    assert used, "no query names a series"
    assert used <= exposed, used - exposed
    # Every family of API.md is on the dashboard in some form.
    families = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in used}
    assert len(families) == 10
