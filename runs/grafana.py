"""A Grafana dashboard over the `orchestrator_*` series of `/metrics`, importable as it is.

Built in Python rather than kept as a JSON file so that its queries live next to the series
names they use, and a test can check every query against a real scrape.

Panels name their data source `${DS_PROMETHEUS}`: importing through the UI asks for it (the
`__inputs` entry), and a provisioned copy resolves it through the template variable.
"""

from __future__ import annotations

from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
RATE = "$__rate_interval"
WIDTH = 24


def _target(expr: str, legend: str, ref: str = "A") -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


def _quantiles(series: str, by: str, legend: str) -> list[dict[str, Any]]:
    """p50 and p95 of a histogram, from the rate of its buckets."""
    grouping = f"le, {by}" if by else "le"
    return [
        _target(
            f"histogram_quantile({q}, sum by ({grouping}) (rate({series}_bucket[{RATE}])))",
            f"p{int(q * 100)}{legend}",
            ref,
        )
        for q, ref in ((0.5, "A"), (0.95, "B"))
    ]


def _panel(
    title: str,
    targets: list[dict[str, Any]],
    *,
    unit: str,
    kind: str = "timeseries",
    description: str = "",
) -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
        if kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
    }


def _panels() -> list[dict[str, Any]]:
    """A row of current values on top, then the charts two to a row."""
    gauges = [
        _panel(
            "Queue depth",
            [_target("orchestrator_queue_depth", "queued")],
            unit="short",
            kind="stat",
            description="Queued runs plus agent and http steps waiting for a worker.",
        ),
        _panel(
            "Runs in progress",
            [_target("orchestrator_runs_in_progress", "in progress")],
            unit="short",
            kind="stat",
        ),
        _panel(
            "Pending approvals",
            [_target("orchestrator_approvals_pending", "pending")],
            unit="short",
            kind="stat",
        ),
    ]
    charts = [
        _panel(
            "Runs per second by status",
            [
                _target(
                    f"sum by (status) (rate(orchestrator_runs_total[{RATE}]))",
                    "{{status}}",
                )
            ],
            unit="ops",
        ),
        _panel(
            "Run error rate",
            [
                _target(
                    f'sum(rate(orchestrator_runs_total{{status="failed"}}[{RATE}])) '
                    f"/ sum(rate(orchestrator_runs_total[{RATE}]))",
                    "failed / ended",
                )
            ],
            unit="percentunit",
            description="Share of the runs that ended in the interval that failed.",
        ),
        _panel(
            "Run duration",
            _quantiles("orchestrator_run_duration_seconds", "", ""),
            unit="s",
        ),
        _panel(
            "Step duration by type",
            _quantiles("orchestrator_step_duration_seconds", "type", " {{type}}"),
            unit="s",
        ),
        _panel(
            "Steps per second by type and status",
            [
                _target(
                    f"sum by (type, status) (rate(orchestrator_steps_total[{RATE}]))",
                    "{{type}} {{status}}",
                )
            ],
            unit="ops",
        ),
        _panel(
            "Webhook requests by outcome",
            [
                _target(
                    f"sum by (outcome) (rate(orchestrator_webhook_requests_total[{RATE}]))",
                    "{{outcome}}",
                )
            ],
            unit="reqps",
        ),
        _panel(
            "LLM tokens per hour by direction",
            [
                _target(
                    "sum by (direction) (increase(orchestrator_llm_tokens_total[1h]))",
                    "{{direction}}",
                )
            ],
            unit="short",
        ),
        _panel(
            "LLM cost per hour",
            [_target("sum(increase(orchestrator_cost_usd_total[1h]))", "USD")],
            unit="currencyUSD",
        ),
    ]
    return _laid_out(gauges, height=4) + _laid_out(charts, height=8, columns=2, top=4)


def _laid_out(
    panels: list[dict[str, Any]], *, height: int, columns: int | None = None, top: int = 0
) -> list[dict[str, Any]]:
    """Places panels left to right, `columns` to a row (all of them on one row by default)."""
    columns = columns or len(panels)
    width = WIDTH // columns
    return [
        {
            **panel,
            "gridPos": {
                "h": height,
                "w": width,
                "x": (index % columns) * width,
                "y": top + (index // columns) * height,
            },
        }
        for index, panel in enumerate(panels)
    ]


def dashboard() -> dict[str, Any]:
    panels = [{"id": index, **panel} for index, panel in enumerate(_panels(), start=1)]
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus that scrapes the orchestrator's /metrics.",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
            {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
        ],
        "id": None,
        "uid": "orchestrator-overview",
        "title": "Orchestrator",
        "description": "Runs, steps, queue, approvals, LLM usage and webhooks of the orchestrator.",
        "tags": ["orchestrator"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "refresh": "30s",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "DS_PROMETHEUS",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                }
            ]
        },
        "panels": panels,
    }
