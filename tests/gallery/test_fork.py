"""POST /gallery/{id}/fork: a draft copy in the caller's organization, without secrets."""

from __future__ import annotations

import copy

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from approvals.models import Approval
from core.choices import Role
from orchestrator.models import Agent, ApiToken, Membership, Orchestration
from orchestrator.services import orchestrations
from tests.runs.harness import drain, run_to_rest, statuses

pytestmark = pytest.mark.django_db


def fork(client, orchestration):
    return client.post(f"/api/v1/gallery/{orchestration.pk}/fork")


def test_forking_copies_a_draft_into_the_callers_organization(publish, outsider, other_org):
    source = publish("Lead router", icon="🚦", icon_color="#16a34a")
    response = fork(outsider, source)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert response["ETag"] == f'"{body["etag"]}"'
    forked = Orchestration.objects.get(pk=body["id"])
    assert forked.organization == other_org
    assert forked.forked_from == source
    assert (forked.status, forked.name, forked.slug) == ("draft", "Lead router", "lead-router")
    assert (forked.icon, forked.icon_color) == ("🚦", "#16a34a")
    assert body["tags"] == ["sales", "routing"]
    assert (forked.is_public, forked.public_definition) == (False, False)
    assert body["triggers"] == []
    assert forked.step_count == source.step_count


def test_the_fork_count_goes_up_with_each_fork(publish, outsider, editor):
    source = publish()
    assert fork(outsider, source).status_code == 201
    assert fork(editor, source).status_code == 201
    source.refresh_from_db()
    assert source.fork_count == 2
    assert APIClient().get(f"/api/v1/gallery/{source.pk}").json()["forks"] == 2


def test_the_copy_carries_no_secret_and_runs_in_its_new_organization(publish, outsider):
    source = publish()
    forked = Orchestration.objects.get(pk=fork(outsider, source).json()["id"])
    text = str(forked.definition) + forked.markdown
    for secret in source.secrets:
        assert secret not in text
    assert forked.triggers.count() == 0
    assert {a["name"] for a in forked.definition["agents"]} == {"declared", "writer"}
    run = run_to_rest(orchestrations.activate(forked), {"topic": "tea"})
    assert run.status == "succeeded", run.error
    assert run.organization_id == forked.organization_id
    assert statuses(run)["research"] == "succeeded"


def test_a_public_orchestration_without_a_public_definition_cannot_be_forked(publish, outsider):
    source = publish(public_definition=False)
    response = fork(outsider, source)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    source.refresh_from_db()
    assert source.fork_count == 0


def test_a_private_orchestration_cannot_be_forked(publish, outsider):
    assert fork(outsider, publish(is_public=False)).status_code == 404


def test_forking_needs_a_signed_in_editor(publish, api, other_org):
    source = publish()
    anonymous = fork(APIClient(), source)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "unauthorized"
    viewer = fork(api("viewer", other_org), source)
    assert viewer.status_code == 403
    assert Orchestration.objects.filter(forked_from=source).count() == 0


def test_a_library_agent_named_like_a_declared_one_gets_a_free_name(publish, outsider, org):
    source = publish()
    writer = Agent.objects.get(organization=org, name="writer")
    definition = copy.deepcopy(source.definition)
    definition["agents"] = [
        {"name": "writer", "model": "builtin/echo"},
        {"name": "writer-2", "model": "builtin/echo"},
    ]
    definition["nodes"][0]["config"]["agent"] = str(writer.pk)
    Orchestration.objects.filter(pk=source.pk).update(definition=definition)
    forked = Orchestration.objects.get(pk=fork(outsider, source).json()["id"])
    assert [a["name"] for a in forked.definition["agents"]] == ["writer", "writer-2", "writer-3"]
    assert forked.definition["nodes"][0]["config"]["agent"] == "writer-3"
    assert forked.definition["agents"][2]["system_prompt"] == "You write."


def test_a_forked_subflow_names_its_orchestration_by_slug_and_runs_the_forkers_own(
    org, other_org, outsider
):
    def summarizer(organization, output: str):
        return orchestrations.create_orchestration(
            organization,
            {
                "name": "Summarize",
                "status": "active",
                "definition": {
                    "nodes": [{"id": "s", "type": "transform", "config": {"output": output}}],
                    "edges": [],
                },
            },
        )

    theirs = summarizer(org, "the source organization's summary")
    source = orchestrations.create_orchestration(
        org,
        {
            "name": "Digest",
            "status": "active",
            "is_public": True,
            "public_definition": True,
            "definition": {
                "nodes": [
                    {"id": "sum", "type": "subflow", "config": {"orchestration": str(theirs.pk)}}
                ],
                "edges": [],
            },
        },
    )
    shown = APIClient().get(f"/api/v1/gallery/{source.pk}").json()
    assert str(theirs.pk) not in str(shown)

    forked = Orchestration.objects.get(pk=fork(outsider, source).json()["id"])
    assert forked.definition["nodes"][0]["config"]["orchestration"] == "summarize"
    mine = summarizer(other_org, "my summary")
    run = run_to_rest(orchestrations.activate(forked), {})
    assert run.status == "succeeded", run.error
    child = run.step_runs.get(node_id="sum").child_run
    assert (child.orchestration_id, child.organization_id) == (mine.pk, other_org.pk)
    assert child.output == "my summary"


def approval_flow(org, **approval):
    return orchestrations.create_orchestration(
        org,
        {
            "name": "Gated",
            "status": "active",
            "is_public": True,
            "public_definition": True,
            "definition": {
                "nodes": [
                    {"id": "gate", "type": "approval", "config": {"prompt": "Ship?", **approval}},
                    {"id": "done", "type": "transform", "config": {"output": "shipped"}},
                ],
                "edges": [{"source": "gate", "target": "done"}],
            },
        },
    )


def test_a_fork_can_be_approved_by_its_own_organization_and_shows_no_approver_names(
    org, other_org, outsider, editors
):
    """Approvers are usernames of the source organization: on a public page they say who works
    there, and in a fork nobody of the forking organization could ever decide the gate."""
    editors("alice-at-acme", "bob-at-acme")
    source = approval_flow(
        org, approvers=["alice-at-acme"], escalate_to=["bob-at-acme"], escalate_after_s=60
    )
    shown = APIClient().get(f"/api/v1/gallery/{source.pk}").json()
    assert "alice-at-acme" not in str(shown) and "bob-at-acme" not in str(shown)

    forked = Orchestration.objects.get(pk=fork(outsider, source).json()["id"])
    config = forked.definition["nodes"][0]["config"]
    assert (config["approvers"], config["escalate_to"]) == ([], [])
    run = run_to_rest(orchestrations.activate(forked), {})
    assert run.status == "paused"
    grace = get_user_model().objects.create_user("grace-at-globex")
    Membership.objects.create(user=grace, organization=other_org, role=Role.EDITOR)
    _, raw = ApiToken.issue(other_org, Role.EDITOR, user=grace)
    theirs = APIClient(HTTP_AUTHORIZATION=f"Bearer {raw}")
    approval = Approval.objects.get(run=run)
    response = theirs.post(f"/api/v1/approvals/{approval.pk}/approve", {}, format="json")
    assert response.status_code == 200, response.json()
    drain()
    run.refresh_from_db()
    assert (run.status, run.output) == ("succeeded", "shipped")
