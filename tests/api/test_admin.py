"""Every admin screen loads for an operator, with data in it."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.urls import reverse

from tests.api.helpers import MARKDOWN, three_step, two_step

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


# --- Orchestrations and credentials go through the API's services ------------------------------


def _orchestration_page(operator, orchestration_id: str) -> tuple[str, dict]:
    from tests.triggers.test_admin_sync import change_form_data

    url = reverse("admin:orchestrator_orchestration_change", args=[orchestration_id])
    return url, change_form_data(operator.get(url))


@pytest.fixture
def active(editor) -> dict:
    return editor.post("/api/v1/orchestrations", two_step(status="active"), format="json").json()


def test_a_definition_changed_in_the_admin_is_a_new_version_that_runs_use(operator, editor, active):
    from orchestrator.models import Orchestration

    url, data = _orchestration_page(operator, active["id"])
    response = operator.post(url, {**data, "definition": json.dumps(three_step())})
    assert response.status_code == 302, response.context["adminform"].form.errors
    orchestration = Orchestration.objects.get(pk=active["id"])
    assert (orchestration.version, orchestration.step_count) == (2, 3)
    assert orchestration.etag != active["etag"]
    versions = editor.get(f"/api/v1/orchestrations/{active['id']}/versions").json()["items"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["created_by"] == "op"
    run = editor.post(
        f"/api/v1/orchestrations/{active['id']}/runs", {"input": {"topic": "x"}}, format="json"
    ).json()
    assert (run["version"], run["steps_total"]) == (2, 3)


def test_markdown_changed_in_the_admin_is_compiled_into_the_definition(operator, active):
    from orchestrator.models import Orchestration

    url, data = _orchestration_page(operator, active["id"])
    response = operator.post(url, {**data, "markdown": MARKDOWN})
    assert response.status_code == 302, response.context["adminform"].form.errors
    orchestration = Orchestration.objects.get(pk=active["id"])
    assert orchestration.version == 2
    assert [n["id"] for n in orchestration.definition["nodes"]] == ["research", "report"]
    assert orchestration.markdown == MARKDOWN


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("definition", {"nodes": [{"id": "a", "type": "nope", "config": {}}]}, "nodes[0]"),
        (
            "definition",
            {
                "nodes": [
                    {"id": "a", "type": "transform", "config": {"output": 1}},
                    {"id": "b", "type": "transform", "config": {"output": 2}},
                ],
                "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "a"}],
            },
            "cycle",
        ),
        ("markdown", "# Title\n\n## Steps\n### a\n- type: nope\n", "line"),
        ("settings", {"max_subflow_depth": 99}, "max_subflow_depth"),
        ("settings", {"budget": "fail"}, "unknown field"),
        ("metadata", {"team": 5}, "team"),
        ("slug", "taken", "already used"),
    ],
    ids=["unknown-type", "cycle", "markdown", "settings-range", "settings-key", "metadata", "slug"],
)
def test_what_the_api_refuses_the_admin_shows_as_a_form_error_and_saves_nothing(
    operator, editor, active, field, value, message
):
    from orchestrator.models import Orchestration

    editor.post("/api/v1/orchestrations", two_step(slug="taken"), format="json")
    url, data = _orchestration_page(operator, active["id"])
    posted = value if isinstance(value, str) else json.dumps(value)
    response = operator.post(url, {**data, field: posted})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors.get(field, [])), errors
    orchestration = Orchestration.objects.get(pk=active["id"])
    assert (orchestration.version, orchestration.etag) == (1, active["etag"])
    assert orchestration.slug == "research"


def test_an_orchestration_keeps_to_its_organizations_groups_and_members_in_the_admin(
    operator, active, org, other_org, editors
):
    from orchestrator.models import Group, Orchestration

    [ann] = editors("ann")
    [ola] = editors("ola", organization=other_org)
    theirs = Group.objects.create(organization=other_org, name="Theirs")
    ours = Group.objects.create(organization=org, name="Ours")
    url, data = _orchestration_page(operator, active["id"])
    refused = operator.post(url, {**data, "group": str(theirs.pk), "owner": str(ola.pk)})
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert set(errors) == {"group", "owner"}
    assert "not one of the available choices" in errors["group"][0]
    form = operator.get(url).context["adminform"].form
    assert list(form.fields["group"].queryset) == [ours]
    assert ann in form.fields["owner"].queryset and ola not in form.fields["owner"].queryset
    assert Orchestration.objects.get(pk=active["id"]).group is None

    saved = operator.post(url, {**data, "group": str(ours.pk), "owner": str(ann.pk)})
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    orchestration = Orchestration.objects.get(pk=active["id"])
    assert (orchestration.group, orchestration.owner) == (ours, ann)


def test_a_status_changed_in_the_admin_goes_through_the_service(operator, editor, active):
    url, data = _orchestration_page(operator, active["id"])
    response = operator.post(url, {**data, "status": "paused"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    after = editor.get(f"/api/v1/orchestrations/{active['id']}")
    assert after.json()["status"] == "paused"
    assert after.json()["etag"] != active["etag"]
    refused = editor.post(f"/api/v1/orchestrations/{active['id']}/runs", {}, format="json")
    assert refused.json()["error"] == "orchestration_not_active"


def test_orchestrations_are_not_added_in_the_admin_but_opened_in_the_editor(operator, active):
    assert operator.get(reverse("admin:orchestrator_orchestration_add")).status_code == 403
    url, _ = _orchestration_page(operator, active["id"])
    assert f'href="/orchestrations/{active["id"]}/"' in operator.get(url).content.decode()


def test_a_credential_added_in_the_admin_is_checked_and_encrypted_as_by_the_api(operator, org):
    from core import crypto
    from orchestrator.models import Credential

    url = reverse("admin:orchestrator_credential_add")
    form = {"organization": str(org.pk), "name": "db", "kind": "basic"}
    refused = operator.post(url, {**form, "new_value": "no-colon"})
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["new_value"] == [
        "basic credentials are user:password"
    ]
    assert not Credential.objects.exists()

    saved = operator.post(url, {**form, "new_value": "alice:s3cret\n"})
    assert saved.status_code == 302
    credential = Credential.objects.get()
    assert "s3cret" not in credential.encrypted_value
    assert crypto.decrypt(credential.encrypted_value) == "alice:s3cret\n"


def test_a_credential_whose_kind_changes_in_the_admin_needs_its_value_again(operator, editor):
    from orchestrator.models import Credential

    editor.post(
        "/api/v1/credentials", {"name": "k", "kind": "api_key", "value": "v"}, format="json"
    )
    credential = Credential.objects.get()
    url = reverse("admin:orchestrator_credential_change", args=[credential.pk])
    form = {"organization": str(credential.organization_id), "name": "k", "kind": "header"}
    refused = operator.post(url, form)
    assert refused.status_code == 200
    assert "new_value" in refused.context["adminform"].form.errors
    assert Credential.objects.get().kind == "api_key"
    assert operator.post(url, {**form, "new_value": "X-Key: v"}).status_code == 302
    assert Credential.objects.get().kind == "header"


def test_saving_an_untouched_page_adds_no_version(operator, editor):
    from orchestrator.models import Orchestration

    created = editor.post(
        "/api/v1/orchestrations", {"markdown": MARKDOWN, "description": "two\nlines"}, format="json"
    ).json()
    url, data = _orchestration_page(operator, created["id"])
    # What a browser posts back: a textarea's line breaks as CRLF.
    crlf = {name: data[name].replace("\n", "\r\n") for name in ("markdown", "description")}
    response = operator.post(url, {**data, **crlf})
    assert response.status_code == 302, response.context["adminform"].form.errors
    orchestration = Orchestration.objects.get(pk=created["id"])
    assert (orchestration.version, orchestration.etag) == (1, created["etag"])
    assert orchestration.markdown == MARKDOWN


def agent_form(org, name: str) -> dict:
    """What the admin's add-agent page posts for an agent of `org` with nothing but a model."""
    return {
        "organization": str(org.pk),
        "name": name,
        "model": "builtin/echo",
        "tools": "[]",
        "price": "{}",
        "script": "[]",
    }


def test_an_agents_output_schema_is_checked_in_the_admin_as_by_the_api(operator, org):
    from orchestrator.models import Agent

    url = reverse("admin:orchestrator_agent_add")
    form = agent_form(org, "judge")
    bad = {"properties": {"a": {"pattern": "(a)\\1"}}}
    refused = operator.post(url, {**form, "output_schema": json.dumps(bad)})
    assert refused.status_code == 200
    [error] = refused.context["adminform"].form.errors["output_schema"]
    assert error.startswith("properties.a.pattern: ") and "RE2" in error
    assert not Agent.objects.exists()

    saved = operator.post(url, {**form, "output_schema": '{"type": "object"}'})
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    assert Agent.objects.get().output_schema == {"type": "object"}


def test_an_agent_saved_in_the_admin_is_checked_as_by_the_api(operator, org, other_org, editors):
    from orchestrator.models import Agent, Credential

    editors("ann")
    theirs = Credential.objects.create(organization=other_org, name="their-key", kind="api_key")
    ours = Credential.objects.create(organization=org, name="our-key", kind="api_key")
    url = reverse("admin:orchestrator_agent_add")
    form = agent_form(org, "fetcher")
    refused = operator.post(
        url,
        {
            **form,
            "model": "acme/big-model",
            "temperature": "5",
            "max_turns": "500",
            "price": '{"input_per_1k": -1}',
            "credential": str(theirs.pk),
            "tools": json.dumps(
                [
                    {"mcp": "nowhere"},
                    {"tool": "http_get", "approval": {"approvers": ["ann", "mallory"]}},
                ]
            ),
        },
    )
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert set(errors) == {"model", "temperature", "max_turns", "price", "credential", "tools"}
    assert errors["credential"] == ["must be a credential of the agent's organization"]
    assert errors["tools"] == [
        "tools[0].mcp: no MCP server 'nowhere' in this organization",
        "tools[1].approval.approvers: 'mallory' cannot decide here: "
        "not an editor or admin of this organization",
    ]
    assert not Agent.objects.exists()

    tools = [{"tool": "http_get", "approval": {"approvers": ["ann"]}}]
    saved = operator.post(
        url,
        {**form, "credential": str(ours.pk), "temperature": "0.5", "tools": json.dumps(tools)},
    )
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    agent = Agent.objects.get()
    assert (agent.credential, agent.temperature, agent.tools) == (ours, 0.5, tools)
    change = operator.get(reverse("admin:orchestrator_agent_change", args=[agent.pk]))
    assert list(change.context["adminform"].form.fields["credential"].queryset) == [ours]


def test_a_row_of_an_organization_stays_in_it_in_the_admin(operator, org, other_org):
    """A credential, an agent, a group and a token keep the organization they were made in:
    their change pages show it and a posted one changes nothing."""
    from orchestrator.models import Agent, ApiToken, Credential, Group
    from tests.triggers.test_admin_sync import change_form_data

    credential = Credential.objects.create(organization=org, name="key", kind="api_key")
    rows = [
        credential,
        Agent.objects.create(organization=org, name="helper", model="builtin/echo"),
        Group.objects.create(organization=org, name="Ops"),
        ApiToken.issue(org, "editor", service_account="ci")[0],
    ]
    for row in rows:
        opts = row._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk])
        page = operator.get(url)
        data = change_form_data(page)
        assert "organization" not in data, opts.model_name
        response = operator.post(url, {**data, "organization": str(other_org.pk)})
        assert response.status_code == 302, (
            opts.model_name,
            response.context["adminform"].form.errors,
        )
        row.refresh_from_db()
        assert row.organization_id == org.pk, opts.model_name
