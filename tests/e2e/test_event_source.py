"""A page's own `EventSource` on a run's event stream, in chromium: what a browser sends
(`Accept: text/event-stream`, the session cookie) gets the run's events through the end."""

from __future__ import annotations

import pytest

from orchestrator.services.orchestrations import create_orchestration
from runs.models import TriggerKind as RunTrigger
from runs.services import lifecycle

pytestmark = [pytest.mark.browser, pytest.mark.worker]

# Named events reach only listeners of their name; the page listens for these and records the
# order. It stops at `done`, as EventSource would otherwise reconnect when the stream closes.
LISTEN = """
(url) => new Promise((resolve, reject) => {
  const source = new EventSource(url);
  const seen = [];
  const timer = setTimeout(() => {
    source.close();
    reject(new Error("no done after: " + seen.join(", ")));
  }, 30000);
  for (const name of ["run_queued", "step_start", "step_complete", "orchestration_complete"]) {
    source.addEventListener(name, (event) => {
      seen.push({name, id: event.lastEventId, data: JSON.parse(event.data)});
    });
  }
  source.addEventListener("done", (event) => {
    clearTimeout(timer);
    source.close();
    resolve({seen, done: JSON.parse(event.data)});
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      clearTimeout(timer);
      reject(new Error("the stream was refused"));
    }
  };
})
"""


def test_an_event_source_in_the_page_receives_a_run_live_through_its_end(page, org):
    orchestration = create_orchestration(
        org,
        {
            "name": "Streamed",
            "status": "active",
            "definition": {
                "nodes": [
                    {"id": "first", "type": "transform", "config": {"output": "one"}},
                    {"id": "second", "type": "transform", "config": {"output": "two"}},
                ],
                "edges": [{"source": "first", "target": "second"}],
            },
        },
    )
    run, _ = lifecycle.fire(orchestration, {}, trigger_kind=RunTrigger.API)

    result = page.evaluate(LISTEN, f"/api/v1/runs/{run.pk}/events/stream")

    names = [event["name"] for event in result["seen"]]
    assert names[0] == "run_queued" and names[-1] == "orchestration_complete"
    completed = [e["data"]["step_id"] for e in result["seen"] if e["name"] == "step_complete"]
    assert completed == ["first", "second"]
    assert result["seen"][-1]["data"]["data"]["output"] == "two"
    assert result["done"] == {"run_id": str(run.pk), "status": "succeeded"}
    ids = [int(event["id"]) for event in result["seen"]]
    assert ids == sorted(ids)
