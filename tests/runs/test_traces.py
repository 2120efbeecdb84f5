"""OpenTelemetry spans of runs, steps, model calls and tool calls, caught by the SDK's in-memory
exporter: one trace per fired run, its subflows included, written after each commit."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from config import tracing
from config.celery import app as celery_app
from runs.models import Run, StepRun
from runs.services import execution, lifecycle, timers
from tests.runs.conftest import edge, transform
from tests.runs.harness import drain, run_to_rest, skip_waits
from tests.runs.servers import local_server

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_INPUT = "input-that-must-stay-out-of-traces"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(exporter))
    yield exporter
    tracing.shutdown()


@pytest.fixture
def eager():
    """Tasks run inline when their transaction commits, as a worker would run them."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def upstream(settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with local_server() as server:
        yield server


def by_name(finished) -> dict:
    named: dict = {}
    for span in finished:
        named.setdefault(span.name, []).append(span)
    return named


def parent_of(span) -> int | None:
    return span.parent.span_id if span.parent else None


def assert_within(child, parent) -> None:
    assert parent.start_time <= child.start_time <= child.end_time <= parent.end_time, (
        child.name,
        parent.name,
    )


def test_a_run_is_one_trace_of_its_steps_model_calls_tool_calls_and_subflow(
    make_flow, upstream, spans, eager
):
    make_flow([transform("inner", "inner {{ input.topic }}")], name="Child", slug="child")
    script = [{"tool": "http_get", "args": {"url": f"{upstream.url}/facts"}}, "done"]
    agent = {
        "model": "builtin/script",
        "tools": ["http_get"],
        "price": {"input_per_1k": 10, "output_per_1k": 20},
    }
    flow = make_flow(
        [
            transform("prep", "{{ input.topic }}"),
            {"id": "fetch", "type": "http", "config": {"url": f"{upstream.url}/items"}},
            {
                "id": "work",
                "type": "agent",
                "config": {"agent": agent, "prompt": "Study {{ input.topic }}", "script": script},
            },
            {
                "id": "nested",
                "type": "subflow",
                "config": {"orchestration": "child", "input": {"topic": "{{ input.topic }}"}},
            },
        ],
        [edge("prep", "fetch"), edge("fetch", "work"), edge("work", "nested")],
        inputs=[{"name": "topic", "type": "string"}],
        name="Research",
        slug="research",
    )
    run = run_to_rest(flow, {"topic": SECRET_INPUT})
    assert run.status == "succeeded", run.error
    child = Run.objects.get(parent_run=run)

    finished = spans.get_finished_spans()
    named = by_name(finished)
    assert sorted(named) == sorted(
        [
            "run research",
            "step prep",
            "step fetch",
            "step work",
            "chat script",
            "execute_tool http_get",
            "step nested",
            "run child",
            "step inner",
        ]
    )
    assert {span.context.trace_id for span in finished} == {run.pk.int}
    assert {span.resource.attributes["service.name"] for span in finished} == {"orchestrator"}

    (root,) = named["run research"]
    assert root.parent is None
    assert root.status.status_code == StatusCode.UNSET
    assert root.attributes["orchestrator.run.id"] == str(run.pk)
    assert root.attributes["orchestrator.run.status"] == "succeeded"
    assert root.attributes["orchestrator.orchestration.slug"] == "research"
    assert root.attributes["orchestrator.organization.slug"] == "acme"
    for name in ("step prep", "step fetch", "step work", "step nested"):
        (step,) = named[name]
        assert parent_of(step) == root.context.span_id
        assert step.attributes["orchestrator.step.status"] == "succeeded"
        assert step.attributes["orchestrator.step.attempt"] == 1
        assert_within(step, root)
    (work,) = named["step work"]
    assert work.attributes["orchestrator.step.type"] == "agent"
    assert named["step fetch"][0].attributes["orchestrator.step.type"] == "http"

    calls = named["chat script"]
    assert len(calls) == 2
    recorded = StepRun.objects.get(run=run, node_id="work")
    for call in calls:
        assert parent_of(call) == work.context.span_id
        assert call.kind == SpanKind.CLIENT
        assert call.attributes["gen_ai.system"] == "builtin"
        assert call.attributes["gen_ai.request.model"] == "script"
        assert_within(call, work)
    assert sum(c.attributes["gen_ai.usage.input_tokens"] for c in calls) == recorded.tokens_input
    assert sum(c.attributes["gen_ai.usage.output_tokens"] for c in calls) == recorded.tokens_output
    assert sum(c.attributes["orchestrator.cost_usd"] for c in calls) == pytest.approx(
        float(recorded.cost_usd)
    )
    (tool,) = named["execute_tool http_get"]
    assert parent_of(tool) == work.context.span_id
    assert tool.attributes["gen_ai.tool.name"] == "http_get"
    assert tool.status.status_code == StatusCode.UNSET
    first, second = sorted(calls, key=lambda c: c.start_time)
    assert first.end_time <= tool.start_time <= tool.end_time <= second.end_time

    (nested,) = named["step nested"]
    (child_span,) = named["run child"]
    assert parent_of(child_span) == nested.context.span_id
    assert child_span.attributes["orchestrator.run.id"] == str(child.pk)
    assert_within(child_span, nested)
    (inner,) = named["step inner"]
    assert parent_of(inner) == child_span.context.span_id
    assert_within(inner, child_span)

    texts = [str(value) for span in finished for value in span.attributes.values()]
    assert not [text for text in texts if SECRET_INPUT in text or "Study" in text]


def test_a_retried_step_has_a_span_per_attempt_and_failures_are_errors(
    make_flow, upstream, spans, eager
):
    flow = make_flow(
        [
            {
                "id": "fetch",
                "type": "http",
                "config": {"url": f"{upstream.url}/status/503"},
                "retry": {"max_attempts": 2, "backoff_s": 0},
            }
        ],
        slug="flaky",
    )
    run = run_to_rest(flow)
    skip_waits()
    drain()
    run.refresh_from_db()
    assert run.status == "failed"

    named = by_name(spans.get_finished_spans())
    attempts = sorted(named["step fetch"], key=lambda s: s.attributes["orchestrator.step.attempt"])
    assert [s.attributes["orchestrator.step.attempt"] for s in attempts] == [1, 2]
    assert len({s.context.span_id for s in attempts}) == 2
    for attempt in attempts:
        assert attempt.status.status_code == StatusCode.ERROR
        assert attempt.attributes["orchestrator.error.code"] == "step_failed"
        assert attempt.attributes["orchestrator.step.status"] == "failed"
    assert attempts[0].end_time <= attempts[1].start_time
    (root,) = named["run flaky"]
    assert root.status.status_code == StatusCode.ERROR
    assert root.attributes["orchestrator.error.code"] == "step_failed"
    assert root.attributes["orchestrator.run.status"] == "failed"
    assert {parent_of(s) for s in attempts} == {root.context.span_id}


def test_a_rolled_back_transition_writes_no_span(make_flow, spans, eager):
    gate = {"id": "gate", "type": "approval", "config": {"prompt": "Ship it?"}}
    flow = make_flow([gate], slug="gated")
    run = run_to_rest(flow)
    assert run.status == "paused"
    assert spans.get_finished_spans() == ()

    with pytest.raises(RuntimeError), transaction.atomic():
        lifecycle.cancel(run)
        raise RuntimeError("the request failed after cancelling")
    assert spans.get_finished_spans() == ()

    lifecycle.cancel(run)
    named = by_name(spans.get_finished_spans())
    assert sorted(named) == ["run gated", "step gate"]
    assert named["step gate"][0].attributes["orchestrator.step.status"] == "cancelled"
    assert named["run gated"][0].attributes["orchestrator.error.code"] == "cancelled"
    assert named["run gated"][0].status.status_code == StatusCode.UNSET


def test_an_attempt_lost_with_its_worker_has_an_error_span(make_flow, upstream, spans):
    flow = make_flow([{"id": "fetch", "type": "http", "config": {"url": f"{upstream.url}/a"}}])
    run, _ = lifecycle.fire(flow, {})
    lifecycle.advance(run.pk)
    step = execution.claim(StepRun.objects.get(run=run).pk)  # then the worker dies
    StepRun.objects.filter(pk=step.pk).update(lease_expires_at=timezone.now())
    timers.requeue_expired(step)

    (lost,) = spans.get_finished_spans()
    assert lost.name == "step fetch"
    assert lost.attributes["orchestrator.step.attempt"] == 1
    assert lost.attributes["orchestrator.error.code"] == "worker_lost"
    assert lost.status.status_code == StatusCode.ERROR
    drain()
    named = by_name(spans.get_finished_spans())
    assert [s.attributes["orchestrator.step.attempt"] for s in named["step fetch"]] == [1, 2]
    assert named["step fetch"][1].status.status_code == StatusCode.UNSET


def test_an_orchestration_tools_child_run_is_under_the_agent_step_that_called_it(
    make_flow, spans, eager
):
    make_flow([transform("inner", "inner {{ input.n }}")], name="Child", slug="child")
    agent = {
        "model": "builtin/script",
        "tools": [{"orchestration": "child", "name": "child", "description": "Runs the child."}],
        "script": [
            {"tool_calls": [{"name": "child", "arguments": {"n": n}} for n in (1, 2)]},
            "done",
        ],
    }
    config = {"agent": agent, "prompt": "Go"}
    run = run_to_rest(make_flow([{"id": "work", "type": "agent", "config": config}], slug="top"))
    assert run.status == "succeeded", run.error
    named = by_name(spans.get_finished_spans())
    steps = {step.context.span_id for step in named["step work"]}
    # Both calls' runs, not only the one the step's row links.
    assert len(named["run child"]) == 2
    assert all(parent_of(child) in steps for child in named["run child"])
