"""A trigger's fixed input is checked against the declared inputs when it is saved, and a slot
refused later says why on the trigger."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.admin.sites import site

from orchestrator.admin import TriggerAdminForm
from orchestrator.models import Orchestration, ScheduleFiring, Trigger
from orchestrator.services.orchestrations import create_orchestration, update_orchestration
from runs.models import Run
from runs.services import firing

pytestmark = pytest.mark.django_db

INPUTS = [
    {"name": "topic", "type": "string", "required": True},
    {"name": "depth", "type": "integer", "required": False},
]


def digest(**extra) -> dict:
    return {
        "name": "Digest",
        "status": "active",
        "definition": {
            "inputs": INPUTS,
            "nodes": [
                {"id": "say", "type": "transform", "config": {"output": "{{ input.topic }}"}}
            ],
        },
        **extra,
    }


@pytest.fixture
def flow(editor):
    return editor.post("/api/v1/orchestrations", digest(), format="json").json()


def schedule(**fields) -> dict:
    return {"kind": "schedule", "cron_expression": "0 8 * * *", "timezone": "UTC", **fields}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # Every slot would start a run without its required input.
        (schedule(), "input.topic"),
        (schedule(input={"depth": 2}), "input.topic"),
        (schedule(input={"topic": 5}), "input.topic"),
        (schedule(input={"topic": "releases", "tpoic": "typo"}), "input.tpoic"),
        (schedule(input={"topic": "releases", "depth": "deep"}), "input.depth"),
        # A webhook's payload may bring the required input, not a wrong type or an unknown name.
        ({"kind": "webhook", "input": {"depth": "deep"}}, "input.depth"),
        ({"kind": "manual", "input": {"colour": "red"}}, "input.colour"),
        # Only a schedule runs on one: a webhook's would be shown and never used.
        ({"kind": "webhook", "cron_expression": "0 8 * * *"}, "cron_expression"),
    ],
)
def test_a_fixed_input_that_cannot_start_a_run_is_refused_on_the_path(editor, flow, body, field):
    response = editor.post(f"/api/v1/orchestrations/{flow['id']}/triggers", body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["error"] == "validation_error"
    assert list(response.json()["fields"]) == [field]
    assert not Trigger.objects.exists()


def test_a_fixed_input_that_fits_is_kept_and_fills_each_run(editor, flow):
    url = f"/api/v1/orchestrations/{flow['id']}/triggers"
    cron = editor.post(url, schedule(input={"topic": "releases", "depth": 2}), format="json")
    assert cron.status_code == 201, cron.json()
    hook = editor.post(url, {"kind": "webhook", "input": {"depth": 3}}, format="json")
    assert hook.status_code == 201, hook.json()
    assert hook.json()["input"] == {"depth": 3}
    assert cron.json()["state_detail"] is None

    trigger = Trigger.objects.get(pk=cron.json()["id"])
    firing.fire(trigger.pk, datetime(2026, 5, 4, 8, 0, 1, tzinfo=UTC))
    assert Run.objects.get().input == {"topic": "releases", "depth": 2}


def test_changing_a_fixed_input_is_checked_and_a_refused_change_keeps_the_trigger(editor, flow):
    created = editor.post(
        f"/api/v1/orchestrations/{flow['id']}/triggers",
        schedule(input={"topic": "releases"}),
        format="json",
    ).json()
    refused = editor.patch(
        f"/api/v1/triggers/{created['id']}", {"input": {"topic": ["a"]}}, format="json"
    )
    assert refused.status_code == 400
    assert list(refused.json()["fields"]) == ["input.topic"]
    assert Trigger.objects.get().input == {"topic": "releases"}
    # A client that sends back what it read (a webhook's empty cron expression) is not refused.
    hook = editor.post(
        f"/api/v1/orchestrations/{flow['id']}/triggers", {"kind": "webhook"}, format="json"
    ).json()
    read = editor.get(f"/api/v1/triggers/{hook['id']}").json()
    again = editor.patch(
        f"/api/v1/triggers/{hook['id']}",
        {key: read[key] for key in ("cron_expression", "timezone", "input", "is_active")},
        format="json",
    )
    assert again.status_code == 200, again.json()


def test_an_orchestration_created_with_a_trigger_that_cannot_fire_is_not_created(editor):
    response = editor.post(
        "/api/v1/orchestrations",
        digest(triggers=[{"kind": "webhook"}, schedule(input={"topic": 1})]),
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["triggers[1].input.topic"]
    assert not Orchestration.objects.exists()


def test_a_slot_refused_after_the_inputs_changed_says_why_until_the_trigger_is_mended(org, editor):
    flow = create_orchestration(org, digest(triggers=[schedule(input={"topic": "releases"})]))
    trigger = flow.triggers.get()
    # A later version renames the input: the stored fixed input no longer fits.
    renamed = {
        "inputs": [{"name": "subject", "type": "string", "required": True}],
        "nodes": [{"id": "say", "type": "transform", "config": {"output": "{{ input.subject }}"}}],
    }
    update_orchestration(flow, {"definition": renamed}, if_match=flow.etag, replace=False)

    refused = firing.fire(trigger.pk, datetime(2026, 5, 4, 8, 0, 1, tzinfo=UTC))
    assert refused.outcome == "error"
    shown = editor.get(f"/api/v1/triggers/{trigger.pk}").json()
    assert shown["state"] == "error"
    assert "input.topic" in shown["state_detail"] and "subject" in shown["state_detail"]
    assert ScheduleFiring.objects.get().detail == shown["state_detail"]
    assert not Run.objects.exists()

    mended = editor.patch(
        f"/api/v1/triggers/{trigger.pk}", {"input": {"subject": "releases"}}, format="json"
    )
    assert mended.status_code == 200, mended.json()
    assert (mended.json()["state"], mended.json()["state_detail"]) == ("live", None)
    fired = firing.fire(trigger.pk, datetime(2026, 5, 5, 8, 0, 1, tzinfo=UTC))
    assert fired.outcome == "fired"
    assert Run.objects.get().input == {"subject": "releases"}


def test_the_admin_checks_a_fixed_input_as_the_api_does(org):
    flow = create_orchestration(org, digest(triggers=[schedule(input={"topic": "releases"})]))
    trigger = flow.triggers.get()
    fields = {
        name: getattr(trigger, name)
        for name in TriggerAdminForm._meta.fields
        if name not in ("input", "input_schema", "secret_rotated_at")
    }
    refused = TriggerAdminForm(data={**fields, "input": '{"topic": 7}'}, instance=trigger)
    assert not refused.is_valid()
    assert "input.topic: must be of type string, not a number" in refused.errors["input"][0]
    accepted = TriggerAdminForm(data={**fields, "input": '{"topic": "news"}'}, instance=trigger)
    assert accepted.is_valid(), accepted.errors
    assert "state_detail" in site._registry[Trigger].readonly_fields
