"""Every admin screen loads for an operator, with data in it."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from tests.api.helpers import two_step

pytestmark = pytest.mark.django_db


def test_every_registered_model_has_a_working_list_and_change_page(operator, editor):
    created = editor.post(
        "/api/v1/orchestrations", two_step(trigger={"kind": "webhook"}), format="json"
    ).json()
    editor.post(
        "/api/v1/credentials", {"name": "k", "kind": "api_key", "value": "v"}, format="json"
    )
    editor.post("/api/v1/agents", {"name": "a", "model": "builtin/echo"}, format="json")
    editor.post("/api/v1/groups", {"name": "g"}, format="json")
    editor.post(f"/api/v1/orchestrations/{created['id']}/activate")
    editor.post(
        f"/api/v1/orchestrations/{created['id']}/runs", {"input": {"topic": "x"}}, format="json"
    )
    for model in admin.site._registry:
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        response = operator.get(url)
        assert response.status_code == 200, url
        first = model.objects.first()
        if first is not None:
            change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk])
            assert operator.get(change).status_code == 200, change


def test_every_model_of_the_project_has_an_admin_screen_or_is_shown_inline():
    from django.apps import apps

    inline_only = {"RunEvent", "OrchestrationTag"}
    missing = [
        model.__name__
        for app in ("orchestrator", "runs", "approvals", "gallery")
        for model in apps.get_app_config(app).get_models()
        if model not in admin.site._registry and model.__name__ not in inline_only
    ]
    assert missing == []


def test_the_replay_action_starts_what_it_may_and_says_why_not_for_the_rest(operator, editor):
    from runs.models import Run

    created = editor.post("/api/v1/orchestrations", two_step(), format="json").json()
    editor.post(f"/api/v1/orchestrations/{created['id']}/activate")
    fired = editor.post(
        f"/api/v1/orchestrations/{created['id']}/runs", {"input": {"topic": "x"}}, format="json"
    ).json()
    url = reverse("admin:runs_run_changelist")
    action = {"action": "replay_runs", "_selected_action": [fired["id"]]}
    response = operator.post(url, action, follow=True)
    assert "Started 1 replays." in response.content.decode()
    editor.post(f"/api/v1/orchestrations/{created['id']}/pause")
    response = operator.post(url, action, follow=True)
    page = response.content.decode()
    assert response.status_code == 200
    assert "activate it before replaying its runs" in page and "Started 0 replays." in page
    assert Run.objects.filter(replays_run_id=fired["id"]).count() == 1


def test_version_history_cannot_be_changed_or_deleted_in_the_admin(operator, editor):
    # The delete page offered to remove a version and, by cascade, every run of it.
    from orchestrator.models import OrchestrationVersion

    created = editor.post("/api/v1/orchestrations", two_step(), format="json").json()
    version = OrchestrationVersion.objects.get(orchestration_id=created["id"])
    change = reverse("admin:orchestrator_orchestrationversion_change", args=[version.pk])
    delete = reverse("admin:orchestrator_orchestrationversion_delete", args=[version.pk])
    page = operator.get(change).content.decode()
    assert 'name="_save"' not in page
    assert operator.get(delete).status_code == 403
    assert operator.post(delete, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:orchestrator_orchestrationversion_changelist")
    bulk = {"action": "delete_selected", "_selected_action": [version.pk], "post": "yes"}
    operator.post(changelist, bulk)
    assert OrchestrationVersion.objects.filter(pk=version.pk).exists()
