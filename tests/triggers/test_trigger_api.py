from __future__ import annotations

import pytest

from tests.api.helpers import two_step

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow(editor):
    return editor.post("/api/v1/orchestrations", two_step(), format="json").json()


def test_triggers_are_created_listed_changed_and_deleted(editor, flow):
    url = f"/api/v1/orchestrations/{flow['id']}/triggers"
    created = editor.post(
        url,
        {
            "kind": "schedule",
            "cron_expression": "0 9 * * 1-5",
            "timezone": "Europe/Paris",
            "input": {"topic": "releases"},
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    trigger = created.json()
    assert trigger["next_run_at"] is None  # a draft: not scheduled
    editor.post(f"/api/v1/orchestrations/{flow['id']}/activate")
    assert editor.get(f"/api/v1/triggers/{trigger['id']}").json()["next_run_at"] is not None
    assert trigger["webhook_url"] is None
    assert [t["id"] for t in editor.get(url).json()["items"]] == [trigger["id"]]
    changed = editor.patch(f"/api/v1/triggers/{trigger['id']}", {"is_active": False}, format="json")
    assert changed.status_code == 200, changed.json()
    assert changed.json()["is_active"] is False
    assert editor.delete(f"/api/v1/triggers/{trigger['id']}").status_code == 204
    assert editor.get(f"/api/v1/triggers/{trigger['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "schedule"}, "cron_expression"),
        ({"kind": "schedule", "cron_expression": "every day"}, "cron_expression"),
        ({"kind": "schedule", "cron_expression": "* * * *"}, "cron_expression"),
        # Never occurs: computing next_run_at was a 500.
        ({"kind": "schedule", "cron_expression": "0 9 31 2 *"}, "cron_expression"),
        # croniter reads them, celery's crontab does not (or reads them otherwise): beat dropped
        # the task, or sent it on days whose slot had not come.
        ({"kind": "schedule", "cron_expression": "0 9 * * 7"}, "cron_expression"),
        ({"kind": "schedule", "cron_expression": "0 9 * * MON#2"}, "cron_expression"),
        ({"kind": "schedule", "cron_expression": "0 9 L * *"}, "cron_expression"),
        ({"kind": "schedule", "cron_expression": "0 9 15W * *"}, "cron_expression"),
        ({"kind": "schedule", "cron_expression": "0 9 ? * *"}, "cron_expression"),
        (
            {"kind": "schedule", "cron_expression": "* * * * *", "timezone": "Mars/Olympus"},
            "timezone",
        ),
        ({"kind": "carrier_pigeon"}, "kind"),
        ({"kind": "webhook", "input_schema": {"type": "nonsense"}}, "input_schema.type"),
        ({"kind": "webhook", "input": [1]}, "input"),
    ],
)
def test_invalid_triggers_are_refused_with_the_field(editor, flow, body, field):
    response = editor.post(f"/api/v1/orchestrations/{flow['id']}/triggers", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_a_triggers_kind_cannot_change(editor, flow):
    trigger = editor.post(
        f"/api/v1/orchestrations/{flow['id']}/triggers", {"kind": "manual"}, format="json"
    ).json()
    response = editor.patch(f"/api/v1/triggers/{trigger['id']}", {"kind": "webhook"}, format="json")
    assert response.status_code == 400


def test_another_org_cannot_reach_triggers(editor, outsider, flow):
    trigger = editor.post(
        f"/api/v1/orchestrations/{flow['id']}/triggers", {"kind": "webhook"}, format="json"
    ).json()
    for method, url in [
        ("get", f"/api/v1/orchestrations/{flow['id']}/triggers"),
        ("post", f"/api/v1/orchestrations/{flow['id']}/triggers"),
        ("get", f"/api/v1/triggers/{trigger['id']}"),
        ("patch", f"/api/v1/triggers/{trigger['id']}"),
        ("delete", f"/api/v1/triggers/{trigger['id']}"),
        ("post", f"/api/v1/triggers/{trigger['id']}/rotate-secret"),
    ]:
        response = getattr(outsider, method)(url, {"kind": "manual"}, format="json")
        assert response.status_code == 404, (method, url)


@pytest.mark.parametrize(
    "cron", ["30 7 * * 1-5", "*/15 9-17 1,15 jan-mar *", "0 9 * * MON-FRI", "0 9 * * sun,wed"]
)
def test_cron_expressions_beat_can_schedule_are_accepted(editor, flow, cron):
    response = editor.post(
        f"/api/v1/orchestrations/{flow['id']}/triggers",
        {"kind": "schedule", "cron_expression": cron, "input": {"topic": "releases"}},
        format="json",
    )
    assert response.status_code == 201, response.json()


def test_a_webhook_triggers_state_follows_its_switch_and_its_orchestration(editor, flow):
    trigger = editor.post(
        f"/api/v1/orchestrations/{flow['id']}/triggers", {"kind": "webhook"}, format="json"
    ).json()
    url = f"/api/v1/triggers/{trigger['id']}"
    editor.post(f"/api/v1/orchestrations/{flow['id']}/activate")
    assert editor.get(url).json()["state"] == "live"
    assert editor.patch(url, {"is_active": False}, format="json").json()["state"] == "paused"
    editor.patch(url, {"is_active": True}, format="json")
    assert editor.get(url).json()["state"] == "live"
    editor.post(f"/api/v1/orchestrations/{flow['id']}/pause")
    assert editor.get(url).json()["state"] == "paused"
    editor.post(f"/api/v1/orchestrations/{flow['id']}/activate")
    assert editor.get(url).json()["state"] == "live"
