from __future__ import annotations

import pytest

from orchestrator.services.orchestrations import create_orchestration
from runs import tasks
from runs.models import Run
from tests.runs.harness import run_to_rest


def echo_flow(org, *, agent=None, output_type: str = "markdown", name: str = "Weekly digest"):
    """One agent step that answers with the run's `text` input (echo) or asks `agent`."""
    definition = {
        "inputs": [{"name": "text", "type": "string"}],
        "nodes": [
            {
                "id": "write",
                "type": "agent",
                "config": {
                    "agent": agent or {"model": "builtin/echo"},
                    "prompt": "{{ input.text }}",
                },
            }
        ],
        "edges": [],
        "output_type": output_type,
    }
    return create_orchestration(org, {"name": name, "definition": definition, "status": "active"})


@pytest.fixture
def finished_run(org):
    """`finished_run(text, **flow)`: a succeeded run of `echo_flow` whose output is `text`."""

    def make(text: str = "# Report\n\nAll good.", **flow) -> Run:
        run = run_to_rest(echo_flow(org, **flow), {"text": text})
        assert run.status == "succeeded", run.error
        return run

    return make


class RefineQueue:
    """Refine tasks that requests enqueued on commit; `work()` runs them as a worker would."""

    def __init__(self) -> None:
        self.queued: list[tuple] = []

    def work(self) -> int:
        done, self.queued = self.queued, []
        for args in done:
            tasks.refine_output(*args)
        return len(done)


@pytest.fixture
def refines(monkeypatch) -> RefineQueue:
    queue = RefineQueue()
    monkeypatch.setattr(tasks.refine_output, "delay", lambda *args: queue.queued.append(args))
    return queue


@pytest.fixture
def refine(refines, django_capture_on_commit_callbacks):
    """`refine(client, run, prompt)` posts a refine; the task is queued once the request commits."""

    def post(client, run: Run, prompt="Make it shorter."):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(f"/api/v1/runs/{run.pk}/refine", {"prompt": prompt}, format="json")

    return post
