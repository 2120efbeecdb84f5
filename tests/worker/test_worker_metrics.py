"""Work done by a real Celery worker process shows in the web process's /metrics."""

from __future__ import annotations

import pytest
from django.db.models import Sum

from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run, StepRun
from runs.services import lifecycle
from tests.metrics.scrape import scrape
from tests.worker.conftest import wait_until

pytestmark = pytest.mark.worker

DEFINITION = {
    "nodes": [
        {
            "id": "ask",
            "type": "agent",
            "config": {
                "agent": {
                    "model": "builtin/echo",
                    "price": {"input_per_1k": 1.0, "output_per_1k": 2.0},
                },
                "prompt": "Say something about {{ input.topic }}",
            },
        },
        {"id": "wrap", "type": "transform", "config": {"output": "{{ steps.ask.output }}"}},
    ],
    "edges": [{"source": "ask", "target": "wrap"}],
    "inputs": [{"name": "topic", "type": "string"}],
}


def test_steps_run_by_a_worker_are_counted_by_the_web_process(org, worker, settings):
    flow = create_orchestration(
        org, {"name": "Worked", "status": "active", "definition": DEFINITION}
    )
    runs = [lifecycle.fire(flow, {"topic": topic})[0] for topic in ("tides", "moons", "owls")]
    wait_until(
        lambda: Run.objects.filter(pk__in=[r.pk for r in runs], status="succeeded").count() == 3,
        timeout=90,
    )
    # Nothing here drains: every step ran in the worker, this process only reads the rows.
    assert StepRun.objects.filter(node_type="agent", status="succeeded").count() == 3

    metrics = scrape(settings)
    assert metrics.value("orchestrator_runs_total", status="succeeded", trigger="api") == 3
    assert metrics.value("orchestrator_steps_total", type="agent", status="succeeded") == 3
    assert metrics.value("orchestrator_steps_total", type="transform", status="succeeded") == 3
    assert metrics.value("orchestrator_step_duration_seconds_count", type="agent") == 3
    assert metrics.value("orchestrator_run_duration_seconds_count") == 3
    assert metrics.value("orchestrator_queue_depth") == 0
    assert metrics.value("orchestrator_runs_in_progress") == 0
    usage = StepRun.objects.aggregate(tokens=Sum("tokens_input"), cost=Sum("cost_usd"))
    assert usage["tokens"] > 0
    assert metrics.value("orchestrator_llm_tokens_total", direction="input") == usage["tokens"]
    assert metrics.value("orchestrator_cost_usd_total") == pytest.approx(float(usage["cost"]))
