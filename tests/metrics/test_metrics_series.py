"""/metrics counts what the rows say: runs fired and driven through the real services."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F, Sum
from django.test.utils import CaptureQueriesContext

from orchestrator.models import Orchestration
from orchestrator.services.orchestrations import create_orchestration
from runs.metrics import RUN_BUCKETS_S
from runs.models import Run, StepRun
from runs.services import lifecycle
from tests.metrics.scrape import scrape
from tests.runs.harness import drain

pytestmark = pytest.mark.django_db

PRICED_AGENT = {
    "model": "builtin/echo",
    "price": {"input_per_1k": 10.0, "output_per_1k": 20.0},
}


def flow(org, name: str, nodes: list[dict], edges: tuple = ()) -> Orchestration:
    definition = {"nodes": nodes, "edges": list(edges)}
    return create_orchestration(org, {"name": name, "status": "active", "definition": definition})


@pytest.fixture
def good(org) -> Orchestration:
    """An agent step on a worker, then a transform run inline."""
    return flow(
        org,
        "Good",
        [
            {"id": "ask", "type": "agent", "config": {"agent": PRICED_AGENT, "prompt": "Hi"}},
            {"id": "wrap", "type": "transform", "config": {"output": "{{ steps.ask.output }}"}},
        ],
        [{"source": "ask", "target": "wrap"}],
    )


@pytest.fixture
def bad(org) -> Orchestration:
    return flow(org, "Bad", [{"id": "a", "type": "transform", "config": {"output": "{{ nope }}"}}])


@pytest.fixture
def gated(org) -> Orchestration:
    return flow(org, "Gated", [{"id": "gate", "type": "approval", "config": {"prompt": "Ok?"}}])


def test_ended_runs_and_steps_are_counted_by_status_trigger_and_type(settings, good, bad):
    for _ in range(2):
        lifecycle.fire(good, {})
    lifecycle.fire(bad, {}, trigger_kind="manual")
    drain()
    metrics = scrape(settings)
    assert metrics.value("orchestrator_runs_total", status="succeeded", trigger="api") == 2
    assert metrics.value("orchestrator_runs_total", status="failed", trigger="manual") == 1
    # Every final status and trigger is there from the start, at zero.
    assert metrics.value("orchestrator_runs_total", status="cancelled", trigger="webhook") == 0
    assert len(metrics.series("orchestrator_runs_total")) == 3 * 6
    assert metrics.series("orchestrator_steps_total") == {
        (("status", "succeeded"), ("type", "agent")): 2,
        (("status", "succeeded"), ("type", "transform")): 2,
        (("status", "failed"), ("type", "transform")): 1,
    }


def test_unfinished_runs_are_gauges_not_counted_as_ended(settings, good, gated):
    queued, _ = lifecycle.fire(good, {})
    metrics = scrape(settings)
    assert metrics.value("orchestrator_queue_depth") == 1  # the queued run
    assert metrics.value("orchestrator_runs_in_progress") == 0

    lifecycle.advance(queued.pk)
    assert StepRun.objects.get(run=queued).status == "pending"
    metrics = scrape(settings)
    assert metrics.value("orchestrator_queue_depth") == 1  # now its agent step
    assert metrics.value("orchestrator_runs_in_progress") == 1

    lifecycle.fire(gated, {})
    drain()
    assert Run.objects.get(orchestration=gated).status == "paused"
    metrics = scrape(settings)
    assert metrics.value("orchestrator_queue_depth") == 0
    assert metrics.value("orchestrator_runs_in_progress") == 1
    assert metrics.value("orchestrator_approvals_pending") == 1
    assert sum(metrics.series("orchestrator_runs_total").values()) == 1


def test_a_pending_step_waiting_out_a_retry_backoff_is_not_queue_depth(settings, good):
    run, _ = lifecycle.fire(good, {})
    lifecycle.advance(run.pk)
    StepRun.objects.filter(run=run).update(wake_at=F("created_at") + timedelta(hours=1))
    assert scrape(settings).value("orchestrator_queue_depth") == 0


def test_tokens_and_cost_are_those_of_the_agent_steps(settings, good):
    for _ in range(3):
        lifecycle.fire(good, {})
    drain()
    usage = StepRun.objects.aggregate(
        tokens_in=Sum("tokens_input"), tokens_out=Sum("tokens_output"), cost=Sum("cost_usd")
    )
    assert usage["tokens_in"] > 0 and usage["tokens_out"] > 0 and usage["cost"] > 0
    metrics = scrape(settings)
    assert metrics.value("orchestrator_llm_tokens_total", direction="input") == usage["tokens_in"]
    assert metrics.value("orchestrator_llm_tokens_total", direction="output") == usage["tokens_out"]
    assert metrics.value("orchestrator_cost_usd_total") == pytest.approx(float(usage["cost"]))


def test_a_subflow_does_not_count_its_childs_tokens_twice(settings, org, good):
    parent = flow(
        org, "Parent", [{"id": "call", "type": "subflow", "config": {"orchestration": "good"}}]
    )
    run, _ = lifecycle.fire(parent, {})
    drain()
    run.refresh_from_db()
    child = Run.objects.get(parent_run=run)
    assert run.status == "succeeded" and run.tokens_input == child.tokens_input > 0
    metrics = scrape(settings)
    assert metrics.value("orchestrator_llm_tokens_total", direction="input") == child.tokens_input
    assert metrics.value("orchestrator_cost_usd_total") == pytest.approx(float(child.cost_usd))
    assert metrics.value("orchestrator_runs_total", status="succeeded", trigger="subflow") == 1


def test_duration_histograms_are_cumulative_and_end_at_their_count(settings, good, gated):
    for _ in range(3):
        lifecycle.fire(good, {})
    lifecycle.fire(gated, {})  # paused: not ended, so in no histogram
    drain()
    ended = list(Run.objects.filter(status="succeeded").order_by("created_at"))
    for run, seconds in zip(ended, (0.05, 3, 45), strict=True):
        Run.objects.filter(pk=run.pk).update(
            finished_at=F("started_at") + timedelta(seconds=seconds)
        )
    metrics = scrape(settings)

    runs = "orchestrator_run_duration_seconds"
    buckets = {dict(k)["le"]: v for k, v in metrics.series(f"{runs}_bucket").items()}
    assert list(buckets) == [*(str(float(b)) for b in RUN_BUCKETS_S), "+Inf"]
    assert buckets["0.1"] == 1 and buckets["2.5"] == 1
    assert buckets["5.0"] == 2 and buckets["30.0"] == 2
    assert buckets["60.0"] == 3 and buckets["+Inf"] == 3
    assert metrics.value(f"{runs}_count") == 3
    assert metrics.value(f"{runs}_sum") == pytest.approx(48.05, abs=0.01)

    steps = "orchestrator_step_duration_seconds"
    for node_type, attempts in (("agent", 3), ("transform", 3)):
        series = [
            v for k, v in metrics.series(f"{steps}_bucket").items() if ("type", node_type) in k
        ]
        assert series == sorted(series), "buckets must be cumulative"
        assert series[-1] == attempts == metrics.value(f"{steps}_count", type=node_type)
        assert metrics.value(f"{steps}_sum", type=node_type) >= 0
    # The approval gate is still waiting: no duration yet.
    assert ("type", "approval") not in {
        label for k in metrics.series(f"{steps}_count") for label in k
    }


def test_a_scrape_takes_the_same_queries_for_one_run_or_thirty(settings, good, bad):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            scrape(settings)
        return len(captured.captured_queries)

    lifecycle.fire(good, {})
    drain()
    few = queries()
    for index in range(29):
        lifecycle.fire(good if index % 2 else bad, {})
    drain()
    assert Run.objects.count() == 30
    assert queries() == few <= 7  # six over the rows, one over what deleted runs counted
