from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync

from config.celery import app as celery_app
from runs.models import Run
from tests.api.helpers import two_step
from tests.runs.harness import drain

pytestmark = pytest.mark.django_db

FLOW = {
    "name": "Greeter",
    "status": "active",
    "definition": {
        "inputs": [{"name": "name", "type": "string", "required": True}],
        "nodes": [
            {"id": "greet", "type": "transform", "config": {"output": "Hello {{ input.name }}"}},
            {
                "id": "shout",
                "type": "transform",
                "config": {"output": "{{ steps.greet.output | upper }}"},
            },
        ],
        "edges": [{"source": "greet", "target": "shout"}],
    },
}


@pytest.fixture
def flow(editor):
    return editor.post("/api/v1/orchestrations", FLOW, format="json").json()


def read_stream(response) -> str:
    async def collect() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)().decode()


def fire(client, flow, body=None, **headers):
    return client.post(
        f"/api/v1/orchestrations/{flow['id']}/runs", body or {}, format="json", **headers
    )


def test_firing_answers_202_with_the_queued_run(editor, flow):
    response = fire(editor, flow, {"input": {"name": "Ada"}, "metadata": {"ticket": "7"}})
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued"
    assert body["trigger"] == {"kind": "api", "id": None}
    assert body["input"] == {"name": "Ada"}
    assert body["metadata"] == {"ticket": "7"}
    assert body["steps_total"] == 2


def test_the_message_shorthand_fills_the_first_input(editor, flow):
    assert fire(editor, flow, {"message": "Ada"}).json()["input"] == {"name": "Ada"}
    same = fire(editor, flow, {"message": "Ada", "input": {"name": "Ada"}})
    assert same.json()["input"] == {"name": "Ada"}


def test_a_message_and_an_input_that_disagree_start_nothing(editor, flow):
    response = fire(editor, flow, {"message": "Ada", "input": {"name": "Grace"}})
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert list(response.json()["fields"]) == ["message"]
    assert "'name'" in response.json()["detail"]
    assert Run.objects.count() == 0


def test_input_that_does_not_match_is_a_trigger_mismatch(editor, flow):
    response = fire(editor, flow, {"input": {"nom": "x"}})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "trigger_mismatch"
    assert set(body["fields"]) == {"input.nom", "input.name"}
    assert Run.objects.count() == 0


def test_firing_a_draft_is_409(editor):
    draft = editor.post("/api/v1/orchestrations", two_step(), format="json").json()
    response = fire(editor, draft, {"input": {"topic": "x"}})
    assert response.status_code == 409
    assert response.json()["error"] == "orchestration_not_active"


def test_viewers_cannot_fire(viewer, flow):
    assert fire(viewer, flow, {"message": "x"}).status_code == 403


def test_the_idempotency_key_returns_the_same_run(editor, flow):
    first = fire(editor, flow, {"message": "a"}, HTTP_IDEMPOTENCY_KEY="abc").json()
    second = fire(editor, flow, {"message": "a"}, HTTP_IDEMPOTENCY_KEY="abc").json()
    assert first["id"] == second["id"]
    assert Run.objects.count() == 1


def test_the_same_idempotency_key_with_the_same_request_in_another_form_is_the_same_run(
    editor, flow
):
    first = fire(
        editor, flow, {"message": "a", "metadata": {"x": "1", "y": "2"}}, HTTP_IDEMPOTENCY_KEY="abc"
    )
    second = fire(
        editor,
        flow,
        {"metadata": {"y": "2", "x": "1"}, "input": {"name": "a"}, "async": True},
        HTTP_IDEMPOTENCY_KEY="abc",
    )
    assert second.status_code == 202, second.content
    assert second.json()["id"] == first.json()["id"]
    assert Run.objects.count() == 1


@pytest.mark.parametrize(
    "changed",
    [{"message": "b"}, {"message": "a", "metadata": {"ticket": "7"}}],
    ids=["input", "metadata"],
)
def test_an_idempotency_key_reused_for_another_request_is_refused_with_409(editor, flow, changed):
    first = fire(editor, flow, {"message": "a"}, HTTP_IDEMPOTENCY_KEY="abc").json()
    reused = fire(editor, flow, changed, HTTP_IDEMPOTENCY_KEY="abc")
    assert reused.status_code == 409, reused.content
    body = reused.json()
    assert body["error"] == "conflict"
    assert "Idempotency-Key 'abc'" in body["detail"] and first["id"] in body["detail"]
    assert Run.objects.count() == 1


def test_an_idempotency_key_longer_than_kept_is_refused_not_cut(editor, flow):
    longest = "k" * 255
    kept = fire(editor, flow, {"message": "a"}, HTTP_IDEMPOTENCY_KEY=longest)
    assert kept.status_code == 202, kept.content
    # Cut to 255, these two were the first key: the second was refused as its reuse.
    for key, message in [(longest + "1", "b"), (longest + "2", "c")]:
        refused = fire(editor, flow, {"message": message}, HTTP_IDEMPOTENCY_KEY=key)
        assert refused.status_code == 400, refused.content
        assert refused.json()["fields"] == {"Idempotency-Key": ["at most 255 characters"]}
    assert Run.objects.count() == 1


def test_an_idempotency_key_belongs_to_one_orchestration(editor, flow):
    other = editor.post("/api/v1/orchestrations", {**FLOW, "name": "Other"}, format="json").json()
    first = fire(editor, flow, {"message": "a"}, HTTP_IDEMPOTENCY_KEY="abc").json()
    second = fire(editor, other, {"message": "a"}, HTTP_IDEMPOTENCY_KEY="abc")
    assert second.status_code == 202, second.content
    assert second.json()["id"] != first["id"]
    assert second.json()["orchestration"] == other["id"]
    assert Run.objects.count() == 2


def test_an_idempotency_key_belongs_to_one_caller(api, editor, flow):
    colleague = api("editor")
    first = fire(editor, flow, {"message": "a"}, HTTP_IDEMPOTENCY_KEY="abc").json()
    theirs = fire(colleague, flow, {"message": "b"}, HTTP_IDEMPOTENCY_KEY="abc")
    assert theirs.status_code == 202, theirs.content
    assert theirs.json()["id"] != first["id"]
    assert (
        fire(colleague, flow, {"message": "b"}, HTTP_IDEMPOTENCY_KEY="abc").json()["id"]
        == (theirs.json()["id"])
    )
    assert Run.objects.count() == 2


def test_an_idempotency_key_older_than_24_hours_starts_a_new_run(editor, flow):
    from datetime import timedelta

    from django.utils import timezone

    first = fire(editor, flow, {"message": "a"}, HTTP_IDEMPOTENCY_KEY="abc").json()
    Run.objects.filter(pk=first["id"]).update(created_at=timezone.now() - timedelta(hours=25))
    again = fire(editor, flow, {"message": "b"}, HTTP_IDEMPOTENCY_KEY="abc")
    assert again.status_code == 202, again.content
    assert again.json()["id"] != first["id"]


def test_the_trace_shows_every_step_with_input_output_and_duration(editor, flow):
    run = fire(editor, flow, {"message": "Ada"}).json()
    drain()
    detail = editor.get(f"/api/v1/runs/{run['id']}").json()
    assert detail["status"] == "succeeded"
    assert detail["output"] == "HELLO ADA"
    assert [s["step_id"] for s in detail["steps"]] == ["greet", "shout"]
    shout = detail["steps"][1]
    assert shout["status"] == "succeeded"
    assert shout["output"] == "HELLO ADA"
    assert shout["duration_ms"] is not None
    assert (detail["steps_completed"], detail["steps_total"]) == (2, 2)
    nested = editor.get(f"/api/v1/orchestrations/{flow['slug']}/runs/{run['id']}").json()
    assert nested["id"] == run["id"]
    steps = editor.get(f"/api/v1/runs/{run['id']}/steps").json()
    assert [s["status"] for s in steps["steps"]] == ["succeeded", "succeeded"]


def test_events_after_a_seq(editor, flow):
    run = fire(editor, flow, {"message": "Ada"}).json()
    drain()
    events = editor.get(f"/api/v1/runs/{run['id']}/events?after=2").json()["items"]
    assert [e["seq"] for e in events] == list(range(3, 3 + len(events)))
    assert events[-1]["type"] == "orchestration_complete"
    assert editor.get(f"/api/v1/runs/{run['id']}/events?after=x").status_code == 400


def test_run_lists_filter_by_status_and_orchestration(editor, flow):
    fire(editor, flow, {"message": "a"})
    drain()
    fire(editor, flow, {"message": "b"})
    assert [r["status"] for r in editor.get("/api/v1/runs").json()["items"]] == [
        "queued",
        "succeeded",
    ]
    assert len(editor.get("/api/v1/runs?status=succeeded").json()["items"]) == 1
    assert len(editor.get(f"/api/v1/runs?orchestration={flow['id']}").json()["items"]) == 2
    assert len(editor.get(f"/api/v1/orchestrations/{flow['id']}/runs").json()["items"]) == 2
    assert editor.get("/api/v1/runs?status=bogus").status_code == 400
    assert editor.get("/api/v1/runs?from=2000-01-01T00:00:00Z").status_code == 200
    assert len(editor.get("/api/v1/runs?to=2000-01-01T00:00:00Z").json()["items"]) == 0


def test_time_filters_take_any_utc_offset_python_reads(editor, flow):
    """PostgreSQL refuses offsets past ±15:59; the bound is compared in UTC instead."""
    fire(editor, flow, {"message": "a"})
    late = editor.get("/api/v1/runs", {"to": "2999-01-01T07:40:11+18:23"})
    assert late.status_code == 200, late.content
    assert len(late.json()["items"]) == 1
    early = editor.get("/api/v1/runs", {"from": "0001-01-01T00:00:00+05:00"})
    assert early.status_code == 400
    assert list(early.json()["fields"]) == ["from"]


def test_cancel_answers_202_then_409_once_finished(editor, flow):
    run = fire(editor, flow, {"message": "a"}).json()
    response = editor.post(f"/api/v1/runs/{run['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    again = editor.delete(f"/api/v1/runs/{run['id']}")
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"


def test_replay_starts_a_new_run_linked_to_the_old_one(editor, flow):
    run = fire(editor, flow, {"message": "a"}).json()
    drain()
    response = editor.post(
        f"/api/v1/runs/{run['id']}/replay", {"from_step": "shout"}, format="json"
    )
    assert response.status_code == 202
    replay = response.json()
    assert replay["replays_run_id"] == run["id"]
    assert replay["trigger"] == {"kind": "replay", "id": run["id"]}
    for step, message in [("nope", "no step 'nope'"), (5, "must be a step id")]:
        refused = editor.post(
            f"/api/v1/runs/{run['id']}/replay", {"from_step": step}, format="json"
        )
        assert refused.status_code == 400
        assert refused.json()["error"] == "validation_error"
        assert message in refused.json()["fields"]["from_step"][0]


def test_a_run_of_a_deleted_orchestration_stays_readable_but_is_not_replayed(editor, flow):
    run = fire(editor, flow, {"message": "a"}).json()
    drain()
    assert editor.delete(f"/api/v1/orchestrations/{flow['id']}").status_code == 204
    assert editor.get(f"/api/v1/runs/{run['id']}").status_code == 200
    response = editor.post(f"/api/v1/runs/{run['id']}/replay", {}, format="json")
    assert response.status_code == 409, response.content
    assert response.json()["error"] == "orchestration_not_active"


@pytest.mark.parametrize("key", ["id", "slug"])
def test_runs_of_a_deleted_orchestration_stay_under_its_nested_routes(editor, outsider, flow, key):
    run = fire(editor, flow, {"message": "a"}).json()  # still queued: in progress
    assert editor.delete(f"/api/v1/orchestrations/{flow['id']}").status_code == 204
    runs = f"/api/v1/orchestrations/{flow[key]}/runs"

    listed = editor.get(runs)
    assert listed.status_code == 200, listed.content
    assert [item["id"] for item in listed.json()["items"]] == [run["id"]]
    assert editor.get(f"{runs}/{run['id']}").json()["id"] == run["id"]
    assert editor.get(f"{runs}/{run['id']}").json()["steps"]

    cancelled = editor.delete(f"{runs}/{run['id']}")
    assert cancelled.status_code == 202, cancelled.content
    assert cancelled.json()["status"] == "cancelled"

    for refused in (
        editor.post(runs, {"message": "b"}, format="json"),
        editor.post(f"{runs}/stream", {"message": "b"}, format="json"),
        editor.post(f"{runs}/{run['id']}/replay", {}, format="json"),
    ):
        assert refused.status_code == 409, refused.content
        assert refused.json()["error"] == "orchestration_not_active"
        assert "deleted" in refused.json()["detail"]
        assert "activate it" not in refused.json()["detail"]
    assert Run.objects.count() == 1
    assert outsider.get(runs).status_code == 404
    assert outsider.get(f"{runs}/{run['id']}").status_code == 404


def test_a_slug_reused_after_a_delete_names_the_new_orchestration(editor, flow):
    old_run = fire(editor, flow, {"message": "a"}).json()
    editor.delete(f"/api/v1/orchestrations/{flow['id']}")
    new = editor.post("/api/v1/orchestrations", FLOW, format="json").json()
    assert new["slug"] == flow["slug"]
    new_run = fire(editor, new, {"message": "b"}).json()
    listed = editor.get(f"/api/v1/orchestrations/{flow['slug']}/runs").json()["items"]
    assert [item["id"] for item in listed] == [new_run["id"]]
    by_id = editor.get(f"/api/v1/orchestrations/{flow['id']}/runs").json()["items"]
    assert [item["id"] for item in by_id] == [old_run["id"]]


def test_a_run_of_a_paused_orchestration_is_not_replayed_until_it_is_active_again(editor, flow):
    run = fire(editor, flow, {"message": "a"}).json()
    drain()
    path = f"/api/v1/orchestrations/{flow['id']}"
    etag = editor.get(path)["ETag"]
    paused = editor.patch(path, {"status": "paused"}, format="json", HTTP_IF_MATCH=etag)
    assert paused.status_code == 200, paused.content
    response = editor.post(f"/api/v1/runs/{run['id']}/replay", {}, format="json")
    assert response.status_code == 409
    assert response.json() == {
        "error": "orchestration_not_active",
        "detail": "The orchestration is paused; activate it before replaying its runs.",
    }
    editor.patch(path, {"status": "active"}, format="json", HTTP_IF_MATCH=paused["ETag"])
    assert editor.post(f"/api/v1/runs/{run['id']}/replay", {}, format="json").status_code == 202


def test_run_diff_shows_what_changed_between_two_runs(editor, flow):
    first = fire(editor, flow, {"message": "Ada"}).json()
    second = fire(editor, flow, {"message": "Bob"}).json()
    drain()
    diff = editor.get(f"/api/v1/runs/{first['id']}/diff/{second['id']}").json()
    assert diff["steps_changed"] == ["greet", "shout"]
    greet = diff["steps"][0]
    assert greet["output_changed"] is True
    assert "-Hello Ada" in greet["output_diff"]
    assert "+Hello Bob" in greet["output_diff"]
    assert diff["version_changed"] is False


def test_another_org_sees_none_of_the_runs(editor, outsider, flow):
    run = fire(editor, flow, {"message": "a"}).json()
    for method, url in [
        ("get", f"/api/v1/runs/{run['id']}"),
        ("get", f"/api/v1/runs/{run['id']}/steps"),
        ("get", f"/api/v1/runs/{run['id']}/events"),
        ("get", f"/api/v1/runs/{run['id']}/events/stream"),
        ("post", f"/api/v1/runs/{run['id']}/replay"),
        ("post", f"/api/v1/runs/{run['id']}/cancel"),
        ("delete", f"/api/v1/runs/{run['id']}"),
        ("get", f"/api/v1/runs/{run['id']}/diff/{run['id']}"),
        ("get", f"/api/v1/orchestrations/{flow['id']}/runs"),
        ("post", f"/api/v1/orchestrations/{flow['id']}/runs"),
        ("post", f"/api/v1/orchestrations/{flow['id']}/runs/stream"),
        ("get", f"/api/v1/orchestrations/{flow['id']}/runs/{run['id']}"),
    ]:
        response = getattr(outsider, method)(url, {}, format="json")
        assert response.status_code == 404, (method, url, response.status_code)
    assert outsider.get("/api/v1/runs").json()["items"] == []


@pytest.fixture
def eager(settings):
    """Tasks run inline when the request's transaction commits, as a worker would run them."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.mark.django_db(transaction=True)
def test_a_sync_run_answers_with_the_finished_trace(editor, flow, eager):
    response = fire(editor, flow, {"message": "Ada", "async": False})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["output"] == "HELLO ADA"
    assert [s["status"] for s in body["steps"]] == ["succeeded", "succeeded"]


@pytest.mark.django_db(transaction=True)
def test_the_event_stream_replays_from_last_event_id_and_ends_with_done(editor, flow, eager):
    run = fire(editor, flow, {"message": "Ada"}).json()
    response = editor.get(f"/api/v1/runs/{run['id']}/events/stream", HTTP_LAST_EVENT_ID="3")
    assert response["Content-Type"] == "text/event-stream"
    text = read_stream(response)
    ids = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
    assert ids[0] == 4
    assert ids == list(range(4, ids[-1] + 1))
    assert text.rstrip().splitlines()[-2] == "event: done"


@pytest.mark.django_db(transaction=True)
def test_firing_as_a_stream_sends_the_events_then_done(editor, flow, eager):
    response = editor.post(
        f"/api/v1/orchestrations/{flow['id']}/runs/stream", {"message": "Ada"}, format="json"
    )
    text = read_stream(response)
    events = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert events[0] == "run_queued"
    assert "step_complete" in events
    assert events[-2:] == ["orchestration_complete", "done"]
    last = [line for line in text.splitlines() if line.startswith("data: ")][-2]
    assert json.loads(last[6:])["data"]["output"] == "HELLO ADA"


@pytest.mark.django_db(transaction=True)
def test_a_streamed_event_is_the_event_the_events_list_gives(editor, flow, eager):
    run = fire(editor, flow, {"message": "Ada"}).json()
    text = read_stream(editor.get(f"/api/v1/runs/{run['id']}/events/stream"))
    frames = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    listed = editor.get(f"/api/v1/runs/{run['id']}/events").json()["items"]
    assert frames[:-1] == listed
    step_start = next(frame for frame in frames if frame["type"] == "step_start")
    assert step_start["data"]["type"] == "transform"  # the node's type, kept apart
