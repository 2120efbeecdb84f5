"""Every Server-Sent Events endpoint serves the clients SSE is for: those that send
`Accept: text/event-stream` (browsers' EventSource, httpx-sse, sseclient), `*/*`, or no Accept
at all. A client that takes only JSON gets 406 in the API's error format, and nothing happens.

The real clients are in tests/e2e (EventSource in chromium) and below (httpx-sse against daphne).
"""

from __future__ import annotations

import json

import httpx
import pytest
from asgiref.sync import async_to_sync
from httpx_sse import connect_sse

from approvals.models import Approval
from config.celery import app as celery_app
from core.choices import Role
from orchestrator.models import ApiToken
from runs.models import Run
from tests.serving import serve

pytestmark = pytest.mark.django_db(transaction=True)

TAKES_A_STREAM = [
    None,
    "*/*",
    "text/event-stream",
    "text/event-stream; charset=utf-8",
    "application/json, text/event-stream",
    "text/*",
    "application/json;q=0.9, text/event-stream;q=0.1",
]
REFUSES_A_STREAM = [
    "application/json",
    "text/html",
    "text/event-stream;q=0, application/json",
]
ASK = {
    "id": "ask",
    "type": "human_input",
    "config": {"prompt": "Anything to add?", "fields": [{"name": "notes", "type": "text"}]},
}
GREET = {"id": "greet", "type": "transform", "config": {"output": "Hello {{ input.name }}"}}


@pytest.fixture
def eager():
    """Tasks run inline when the request's transaction commits, as a worker would run them."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def definition(nodes: list[dict], edges: list[dict] | None = None) -> dict:
    return {
        "name": "Streamed",
        "status": "active",
        "definition": {
            "inputs": [{"name": "name", "type": "string", "default": "Ada"}],
            "nodes": nodes,
            "edges": edges or [],
        },
    }


def orchestration(client, nodes: list[dict], edges: list[dict] | None = None) -> dict:
    response = client.post("/api/v1/orchestrations", definition(nodes, edges), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def read_events(response) -> list[str]:
    async def collect() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    text = async_to_sync(collect)().decode()
    return [line[7:] for line in text.splitlines() if line.startswith("event: ")]


def accept(value: str | None) -> dict[str, str]:
    return {"HTTP_ACCEPT": value} if value is not None else {}


def paused_run(client) -> Run:
    flow = orchestration(
        client, [ASK, {**GREET, "id": "after"}], [{"source": "ask", "target": "after"}]
    )
    fired = client.post(f"/api/v1/orchestrations/{flow['id']}/runs", {}, format="json")
    run = Run.objects.get(pk=fired.json()["id"])
    assert run.status == "paused"
    return run


@pytest.mark.parametrize("value", TAKES_A_STREAM)
def test_firing_as_a_stream_streams_for_every_accept_that_takes_one(editor, eager, value):
    flow = orchestration(editor, [GREET])
    response = editor.post(
        f"/api/v1/orchestrations/{flow['id']}/runs/stream",
        {"message": "Ada"},
        format="json",
        **accept(value),
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert read_events(response)[-2:] == ["orchestration_complete", "done"]


@pytest.mark.parametrize("value", TAKES_A_STREAM)
def test_the_events_stream_streams_for_every_accept_that_takes_one(editor, eager, value):
    flow = orchestration(editor, [GREET])
    run = editor.post(f"/api/v1/orchestrations/{flow['id']}/runs", {}, format="json").json()
    response = editor.get(f"/api/v1/runs/{run['id']}/events/stream", **accept(value))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    events = read_events(response)
    assert events[0] == "run_queued" and events[-2:] == ["orchestration_complete", "done"]


@pytest.mark.parametrize("value", TAKES_A_STREAM)
def test_resuming_as_a_stream_streams_for_every_accept_that_takes_one(editor, eager, value):
    run = paused_run(editor)
    response = editor.post(
        f"/api/v1/runs/{run.pk}/resume/stream",
        {"response": {"notes": "fine"}},
        format="json",
        **accept(value),
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert read_events(response)[-2:] == ["orchestration_complete", "done"]


def assert_not_acceptable(response) -> None:
    assert response.status_code == 406
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == "not_acceptable"
    assert "text/event-stream" in body["detail"]


@pytest.mark.parametrize("value", REFUSES_A_STREAM)
def test_a_client_that_takes_no_stream_gets_406_and_fires_nothing(editor, eager, value):
    flow = orchestration(editor, [GREET])
    response = editor.post(
        f"/api/v1/orchestrations/{flow['id']}/runs/stream",
        {"message": "Ada"},
        format="json",
        HTTP_ACCEPT=value,
    )
    assert_not_acceptable(response)
    assert not Run.objects.exists()


@pytest.mark.parametrize("value", REFUSES_A_STREAM)
def test_a_client_that_takes_no_stream_gets_406_from_the_events_stream(editor, eager, value):
    flow = orchestration(editor, [GREET])
    run = editor.post(f"/api/v1/orchestrations/{flow['id']}/runs", {}, format="json").json()
    assert_not_acceptable(editor.get(f"/api/v1/runs/{run['id']}/events/stream", HTTP_ACCEPT=value))


@pytest.mark.parametrize("value", REFUSES_A_STREAM)
def test_a_client_that_takes_no_stream_gets_406_and_the_gate_stays_open(editor, eager, value):
    run = paused_run(editor)
    response = editor.post(
        f"/api/v1/runs/{run.pk}/resume/stream",
        {"response": {"notes": "fine"}},
        format="json",
        HTTP_ACCEPT=value,
    )
    assert_not_acceptable(response)
    assert Approval.objects.get(run=run).status == "pending"


def test_errors_before_the_stream_are_still_json_for_an_event_stream_client(editor, outsider):
    flow = orchestration(editor, [GREET])
    response = outsider.post(
        f"/api/v1/orchestrations/{flow['id']}/runs/stream",
        {},
        format="json",
        HTTP_ACCEPT="text/event-stream",
    )
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_the_events_stream_refuses_a_parameter_it_does_not_read(editor, eager):
    # `?aftr=5` replayed every event, as if `after` had been read.
    flow = orchestration(editor, [GREET])
    run = editor.post(f"/api/v1/orchestrations/{flow['id']}/runs", {}, format="json").json()
    response = editor.get(
        f"/api/v1/runs/{run['id']}/events/stream?aftr=5", HTTP_ACCEPT="text/event-stream"
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["aftr"]


# --- httpx-sse against daphne ---------------------------------------------------------------


@pytest.fixture(scope="module")
def daphne(django_db_setup, tmp_path_factory):
    """daphne on the test database, running tasks inline (no worker needed for a few
    transforms)."""
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with serve(log, CELERY_TASK_ALWAYS_EAGER="true") as base:
        yield base


@pytest.fixture
def token_client(daphne, org):
    _, raw = ApiToken.issue(org, Role.EDITOR, service_account="sse-client")
    with httpx.Client(
        base_url=f"{daphne}/api/v1",
        headers={"Authorization": f"Bearer {raw}"},
        timeout=30,
        trust_env=False,
    ) as client:
        yield client


def test_httpx_sse_fires_a_run_and_reads_its_events_to_the_end(token_client):
    flow = token_client.post("/orchestrations", json=definition([GREET])).json()
    with connect_sse(
        token_client, "POST", f"/orchestrations/{flow['id']}/runs/stream", json={}
    ) as source:
        assert source.response.status_code == 200
        events = list(source.iter_sse())
    assert [event.event for event in events][-2:] == ["orchestration_complete", "done"]
    assert json.loads(events[-1].data)["status"] == "succeeded"
    assert [int(event.id) for event in events[:-1]] == list(range(1, len(events)))


def test_httpx_sse_resumes_the_events_stream_from_last_event_id(token_client):
    flow = token_client.post("/orchestrations", json=definition([GREET])).json()
    run = token_client.post(f"/orchestrations/{flow['id']}/runs", json={}).json()
    with connect_sse(
        token_client, "GET", f"/runs/{run['id']}/events/stream", headers={"Last-Event-ID": "2"}
    ) as source:
        assert source.response.headers["content-type"] == "text/event-stream"
        events = list(source.iter_sse())
    assert events[0].id == "3"
    assert [event.event for event in events][-2:] == ["orchestration_complete", "done"]
