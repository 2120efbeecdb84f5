"""What an operator changes in the admin moves beat's tasks as the API does: a status or trigger
changed there pauses or resumes the schedule, a deletion there removes its task."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from orchestrator.models import Orchestration, Trigger
from orchestrator.services.orchestrations import create_orchestration

pytestmark = pytest.mark.django_db


@pytest.fixture
def nightly(org) -> Orchestration:
    return create_orchestration(
        org,
        {
            "name": "Nightly",
            "status": "active",
            "definition": {"nodes": [{"id": "t", "type": "transform", "config": {"output": "x"}}]},
            "triggers": [
                {"kind": "schedule", "cron_expression": "30 2 * * *", "timezone": "Europe/Paris"}
            ],
        },
    )


def task(trigger: Trigger) -> PeriodicTask | None:
    return PeriodicTask.objects.filter(name=f"trigger-{trigger.pk}").first()


def _field_data(form, data: dict) -> None:
    for name in form.fields:
        value = form[name].value()
        key = form.add_prefix(name)
        if value is True:
            data[key] = "on"
        elif value is False or value is None:
            continue
        elif isinstance(value, list | tuple):
            data[key] = [str(v) for v in value]
        else:
            data[key] = str(value)


def change_form_data(response) -> dict:
    """What the browser would post back unchanged from an admin change page."""
    data: dict = {}
    _field_data(response.context["adminform"].form, data)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        _field_data(formset.management_form, data)
        for form in formset.forms:
            _field_data(form, data)
    return data


def trigger_change_page(operator, orchestration: Orchestration) -> tuple[Trigger, str, dict]:
    """The orchestration's trigger, its admin change URL, and the form as the page holds it."""
    trigger = orchestration.triggers.get()
    url = reverse("admin:orchestrator_trigger_change", args=[trigger.pk])
    return trigger, url, change_form_data(operator.get(url))


def test_pausing_and_activating_an_orchestration_in_the_admin_moves_its_beat_task(
    operator, nightly
):
    trigger = nightly.triggers.get()
    url = reverse("admin:orchestrator_orchestration_change", args=[nightly.pk])
    data = change_form_data(operator.get(url))
    response = operator.post(url, {**data, "status": "paused"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert task(trigger).enabled is False
    trigger.refresh_from_db()
    assert (trigger.state, trigger.next_run_at) == ("paused", None)

    response = operator.post(url, {**data, "status": "active"})
    assert response.status_code == 302
    assert task(trigger).enabled is True
    trigger.refresh_from_db()
    assert trigger.state == "live" and trigger.next_run_at is not None


def test_a_trigger_deleted_inline_takes_its_beat_task_with_it(operator, nightly):
    trigger = nightly.triggers.get()
    url = reverse("admin:orchestrator_orchestration_change", args=[nightly.pk])
    data = change_form_data(operator.get(url))
    prefix = next(k for k in data if k.endswith("-0-id") and data[k] == str(trigger.pk))[:-3]
    response = operator.post(url, {**data, f"{prefix}-DELETE": "on"})
    assert response.status_code == 302
    assert not Trigger.objects.filter(pk=trigger.pk).exists()
    assert task(trigger) is None


def test_a_trigger_changed_in_the_admin_reschedules_or_pauses_its_task(operator, nightly):
    trigger, url, data = trigger_change_page(operator, nightly)
    response = operator.post(url, {**data, "cron_expression": "0 9 * * 1-5"})
    assert response.status_code == 302
    assert (task(trigger).crontab.hour, task(trigger).crontab.day_of_week) == ("9", "1-5")

    data.pop("is_active")
    assert operator.post(url, data).status_code == 302
    assert task(trigger).enabled is False
    assert Trigger.objects.get(pk=trigger.pk).state == "paused"


@pytest.mark.parametrize("cron", ["0 9 31 2 *", "0 9 * * MON#2", "0 9 * * 7", "every day"])
def test_the_admin_refuses_a_cron_expression_beat_cannot_schedule(operator, nightly, cron):
    trigger, url, data = trigger_change_page(operator, nightly)
    response = operator.post(url, {**data, "cron_expression": cron})
    assert response.status_code == 200
    assert "cron_expression" in response.context["adminform"].form.errors
    assert Trigger.objects.get(pk=trigger.pk).cron_expression == "30 2 * * *"


def test_the_admin_takes_an_entry_step_of_the_definition_only(operator, nightly):
    trigger, url, data = trigger_change_page(operator, nightly)
    response = operator.post(url, {**data, "node_id": "nope"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["node_id"] == ["no step 'nope'; steps: t"]
    assert operator.post(url, {**data, "node_id": "t"}).status_code == 302
    assert Trigger.objects.get(pk=trigger.pk).node_id == "t"


def test_a_trigger_stays_with_its_orchestration_in_the_admin(operator, other_org, nightly):
    """Its webhook URL and secret were given out for this orchestration; the admin's list
    offered every organization's."""
    elsewhere = create_orchestration(
        other_org,
        {
            "name": "Theirs",
            "definition": {"nodes": [{"id": "t", "type": "transform", "config": {"output": "x"}}]},
        },
    )
    trigger, url, data = trigger_change_page(operator, nightly)
    assert "orchestration" not in data
    response = operator.post(url, {**data, "orchestration": str(elsewhere.pk)})
    assert response.status_code == 302
    assert Trigger.objects.get(pk=trigger.pk).orchestration_id == nightly.pk


def test_deleting_triggers_in_the_admin_removes_their_beat_tasks(operator, org, nightly):
    trigger = nightly.triggers.get()
    url = reverse("admin:orchestrator_trigger_delete", args=[trigger.pk])
    assert operator.post(url, {"post": "yes"}).status_code == 302
    assert task(trigger) is None

    other = create_orchestration(
        org,
        {
            "name": "Hourly",
            "status": "active",
            "definition": {"nodes": [{"id": "t", "type": "transform", "config": {"output": "x"}}]},
            "triggers": [
                {"kind": "schedule", "cron_expression": "0 * * * *"},
                {"kind": "schedule", "cron_expression": "30 * * * *"},
            ],
        },
    )
    both = list(other.triggers.all())
    assert all(task(t) is not None for t in both)
    response = operator.post(
        reverse("admin:orchestrator_trigger_changelist"),
        {"action": "delete_selected", "_selected_action": [str(t.pk) for t in both], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Trigger.objects.filter(orchestration=other).exists()
    assert all(task(t) is None for t in both)
