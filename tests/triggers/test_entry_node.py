"""A trigger's `node_id`: the step its runs start at, checked when set and when fired."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.models import ScheduleFiring, Trigger, WebhookDelivery
from runs.models import Run, RunEvent
from runs.services import firing as schedules
from tests.runs.harness import drain, statuses
from tests.triggers.test_webhooks import post, signed

pytestmark = pytest.mark.django_db

SLOT = datetime(2026, 5, 4, 10, 5, tzinfo=UTC)


def transform(node_id: str, output) -> dict:
    return {"id": node_id, "type": "transform", "config": {"output": output}}


# fetch -> clean -> report, and an unrelated audit step.
DEFINITION = {
    "inputs": [{"name": "text", "type": "string"}],
    "nodes": [
        transform("fetch", "fetched"),
        transform("clean", "clean {{ input.text }}"),
        transform("report", "{{ steps.clean.output }} ({{ steps.fetch.status }})"),
        transform("audit", "audited"),
    ],
    "edges": [
        {"source": "fetch", "target": "clean"},
        {"source": "clean", "target": "report"},
    ],
    "output": "{{ steps.report.output }}",
    "output_type": "text",
}


def create_flow(editor, *triggers: dict) -> dict:
    body = {"name": "Entry", "status": "active", "definition": DEFINITION, "triggers": triggers}
    response = editor.post("/api/v1/orchestrations", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def drop_step(editor, flow: dict, node_id: str) -> None:
    """A new version without `node_id` (and its edges)."""
    current = editor.get(f"/api/v1/orchestrations/{flow['id']}")
    definition = current.json()["definition"]
    definition["nodes"] = [n for n in definition["nodes"] if n["id"] != node_id]
    definition["edges"] = [
        e for e in definition["edges"] if node_id not in (e["source"], e["target"])
    ]
    response = editor.patch(
        f"/api/v1/orchestrations/{flow['id']}",
        {"definition": definition},
        format="json",
        HTTP_IF_MATCH=current["ETag"],
    )
    assert response.status_code == 200, response.json()


def fire_webhook(trigger: dict, payload: dict):
    body = json.dumps(payload).encode()
    return post(trigger["webhook_url"], body, signed(trigger["signing_secret"], body))


# --- validation -----------------------------------------------------------------------------


def test_a_trigger_naming_an_unknown_step_is_refused_with_the_field(editor):
    flow = create_flow(editor)
    response = editor.post(
        f"/api/v1/orchestrations/{flow['id']}/triggers",
        {"kind": "webhook", "node_id": "nope"},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation_error"
    assert "'nope'" in body["detail"]
    assert "fetch, clean, report, audit" in body["fields"]["node_id"][0]
    assert not Trigger.objects.exists()


def test_a_trigger_naming_a_step_is_created_and_can_be_cleared(editor):
    flow = create_flow(editor)
    created = editor.post(
        f"/api/v1/orchestrations/{flow['id']}/triggers",
        {"kind": "manual", "node_id": "clean"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["node_id"] == "clean"
    url = f"/api/v1/triggers/{created.json()['id']}"
    assert editor.patch(url, {"node_id": "gone"}, format="json").status_code == 400
    assert Trigger.objects.get().node_id == "clean"
    assert editor.patch(url, {"node_id": "report"}, format="json").json()["node_id"] == "report"
    assert editor.patch(url, {"node_id": None}, format="json").json()["node_id"] == ""
    assert editor.patch(url, {"node_id": "audit"}, format="json").status_code == 200
    assert editor.patch(url, {"node_id": ""}, format="json").json()["node_id"] == ""


def test_an_orchestration_created_with_a_trigger_on_an_unknown_step_is_refused(editor):
    body = {
        "name": "Entry",
        "definition": DEFINITION,
        "triggers": [{"kind": "webhook", "node_id": "nope"}],
    }
    response = editor.post("/api/v1/orchestrations", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert "node_id" in response.json()["fields"]
    assert not Trigger.objects.exists()


def test_the_schema_documents_the_entry_node_and_the_runs_entry_step(editor):
    schema = editor.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    components = schema["components"]["schemas"]
    assert "409" in components["TriggerWriteRequest"]["properties"]["node_id"]["description"]
    entry = components["Run"]["properties"]["entry_step"]
    assert entry["nullable"] is True
    assert entry["readOnly"] is True


# --- firing -----------------------------------------------------------------------------------


def test_a_webhook_with_an_entry_node_starts_the_run_there(editor):
    flow = create_flow(editor, {"kind": "webhook", "node_id": "clean"})
    response = fire_webhook(flow["triggers"][0], {"text": "data"})
    assert response.status_code == 202, response.json()
    drain()
    run = Run.objects.get(pk=response.json()["run_id"])
    assert run.status == "succeeded", run.error
    assert run.entry_step == "clean"
    assert run.output == "clean data (skipped)"
    assert statuses(run) == {
        "fetch": "skipped",
        "clean": "succeeded",
        "report": "succeeded",
        "audit": "skipped",
    }
    assert (run.steps_completed, run.steps_total) == (4, 4)
    detail = editor.get(f"/api/v1/runs/{run.pk}").json()
    assert detail["entry_step"] == "clean"
    assert detail["trigger"] == {"kind": "webhook", "id": flow["triggers"][0]["id"]}
    assert [(s["step_id"], s["status"]) for s in detail["steps"]] == [
        ("fetch", "skipped"),
        ("clean", "succeeded"),
        ("report", "succeeded"),
        ("audit", "skipped"),
    ]
    queued = RunEvent.objects.get(run=run, type="run_queued")
    assert queued.data == {"trigger": "webhook", "version": 1, "entry_step": "clean"}
    skipped = RunEvent.objects.filter(run=run, type="step_skipped").order_by("seq")
    assert [(e.step_id, e.data) for e in skipped] == [
        ("fetch", {"reason": "outside_entry", "entry_step": "clean"}),
        ("audit", {"reason": "outside_entry", "entry_step": "clean"}),
    ]


def test_a_webhook_without_an_entry_node_runs_every_step(editor):
    flow = create_flow(editor, {"kind": "webhook"})
    response = fire_webhook(flow["triggers"][0], {"text": "data"})
    drain()
    run = Run.objects.get(pk=response.json()["run_id"])
    assert run.entry_step == ""
    assert set(statuses(run).values()) == {"succeeded"}
    assert editor.get(f"/api/v1/runs/{run.pk}").json()["entry_step"] is None


def test_a_schedule_with_an_entry_node_starts_the_run_there(editor):
    flow = create_flow(
        editor,
        {
            "kind": "schedule",
            "cron_expression": "*/5 * * * *",
            "timezone": "UTC",
            "node_id": "report",
            "input": {"text": "nightly"},
        },
    )
    trigger = Trigger.objects.get(pk=flow["triggers"][0]["id"])
    firing = schedules.fire(trigger.pk, SLOT + timedelta(seconds=1))
    assert firing.outcome == "fired"
    drain()
    run = Run.objects.get(pk=firing.run_id)
    assert (run.trigger_kind, run.trigger_ref, run.entry_step) == ("schedule", trigger.pk, "report")
    assert run.status == "succeeded", run.error
    assert statuses(run) == {
        "fetch": "skipped",
        "clean": "skipped",
        "report": "succeeded",
        "audit": "skipped",
    }


# --- a step dropped after the trigger was set -------------------------------------------------


def test_a_webhook_whose_entry_step_was_dropped_is_refused_and_starts_nothing(editor):
    flow = create_flow(editor, {"kind": "webhook", "node_id": "clean"})
    drop_step(editor, flow, "clean")
    response = fire_webhook(flow["triggers"][0], {"text": "data"})
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "conflict"
    assert "step 'clean'" in body["detail"]
    assert "node_id" in body["detail"]
    assert not Run.objects.exists()
    # Nothing was recorded, so the sender's retry works once the trigger is fixed.
    assert not WebhookDelivery.objects.exists()
    assert Trigger.objects.get().trigger_count == 0
    fixed = editor.patch(
        f"/api/v1/triggers/{flow['triggers'][0]['id']}", {"node_id": "report"}, format="json"
    )
    assert fixed.status_code == 200, fixed.json()
    assert fire_webhook(flow["triggers"][0], {"text": "data"}).status_code == 202


def test_a_schedule_whose_entry_step_was_dropped_records_an_error_and_recovers(editor):
    flow = create_flow(
        editor,
        {
            "kind": "schedule",
            "cron_expression": "*/5 * * * *",
            "timezone": "UTC",
            "node_id": "clean",
        },
    )
    trigger = Trigger.objects.get()
    drop_step(editor, flow, "clean")
    firing = schedules.fire(trigger.pk, SLOT + timedelta(seconds=1))
    assert firing.outcome == "error"
    assert "step 'clean'" in firing.detail
    assert firing.run_id is None
    assert not Run.objects.exists()
    listed = editor.get(f"/api/v1/triggers/{trigger.pk}").json()
    assert listed["state"] == "error"
    editor.patch(f"/api/v1/triggers/{trigger.pk}", {"node_id": ""}, format="json")
    assert Trigger.objects.get().state == "live"
    later = schedules.fire(trigger.pk, SLOT + timedelta(minutes=5, seconds=1))
    assert later.outcome == "fired"
    assert ScheduleFiring.objects.count() == 2
