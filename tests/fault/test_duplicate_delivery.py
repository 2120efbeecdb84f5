"""The same message delivered twice at the same moment (a redelivery racing the original, two
workers), 100 times (50 step messages, 50 advance messages): one delivery does the work, the
other finds nothing to claim. No step runs twice, no side effect happens twice, no event is
written twice."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from orchestrator.services.orchestrations import create_orchestration
from runs import tasks
from runs.models import Run, RunEvent, StepRun
from runs.services import execution, lifecycle
from tests.fault.chaos import CapturedBroker, report

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = 50
# Two http steps in each run, one message: the worker that ran `a` claims `b` when it records
# `a`, and runs it in the same task.
STEP_MESSAGES = RUNS


# Each message twice: once through the service, once through the Celery task's own body.
TWICE = {
    "runs.tasks.execute_step": (execution.execute, tasks.execute_step),
    "runs.tasks.advance_run": (lifecycle.advance, tasks.advance_run),
}


def at_once(calls) -> list[BaseException]:
    """Run the calls in threads released together; each thread closes its connection."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def deliver(call) -> None:
        try:
            barrier.wait()
            call()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_a_message_delivered_twice_at_once_does_its_work_once(org, sink, settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    flow = create_orchestration(
        org,
        {
            "name": "Twice",
            "status": "active",
            "definition": {
                "nodes": [
                    sink.step("a"),
                    sink.step("b"),
                    {"id": "c", "type": "transform", "config": {"output": "{{ steps.b.status }}"}},
                ],
                "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}],
            },
        },
    )
    broker = CapturedBroker()
    delivered: Counter = Counter()
    with broker.patch():
        for _ in range(RUNS):
            lifecycle.fire(flow, {})
        while (message := broker.next()) is not None:
            name, args, _ = message
            functions = TWICE.get(name)
            assert functions is not None, f"unexpected task {name}"
            errors = at_once([lambda f=f, a=args: f(*a) for f in functions])
            assert not errors, errors
            delivered[name] += 1

    runs = Run.objects.filter(orchestration=flow)
    steps = StepRun.objects.filter(run__orchestration=flow)
    events = RunEvent.objects.filter(run__orchestration=flow)
    per_step = Counter(events.filter(type="step_complete").values_list("run_id", "step_id"))
    starts = Counter(events.filter(type="step_start").values_list("run_id", "step_id"))
    report(
        "duplicate delivery",
        step_messages_delivered_twice=delivered["runs.tasks.execute_step"],
        advance_messages_delivered_twice=delivered["runs.tasks.advance_run"],
        step_rows=steps.count(),
        step_complete_events=sum(per_step.values()),
        side_effects=sum(sink.calls.values()),
    )

    assert delivered["runs.tasks.execute_step"] == STEP_MESSAGES
    assert delivered["runs.tasks.advance_run"] == RUNS
    assert set(runs.values_list("status", flat=True)) == {"succeeded"}
    assert steps.count() == RUNS * 3  # one attempt per node: no duplicate rows
    assert steps.filter(status="succeeded").count() == RUNS * 3
    assert len(per_step) == RUNS * 3 and set(per_step.values()) == {1}
    assert set(starts.values()) == {1}
    assert Counter(events.filter(type="run_started").values_list("run_id", flat=True)) == Counter(
        {run.pk: 1 for run in runs}
    )
    assert len(sink.calls) == RUNS * 2 and set(sink.calls.values()) == {1}
    for run in runs:
        assert list(events.filter(run=run).values_list("seq", flat=True)) == list(
            range(1, run.last_seq + 1)
        )
