"""The starter catalog: every file compiles, loads idempotently, and runs offline to the end."""

from __future__ import annotations

import json
import time

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from approvals.models import Approval
from orchestrator.models import Orchestration, StarterTemplate
from orchestrator.services import orchestrations
from orchestrator.services.starters import (
    STARTERS_DIR,
    StarterError,
    instantiate,
    load_starters,
    parse_starter,
    read_catalog,
)
from orchestrator.services.webhooks import sign
from runs.models import Run
from tests.runs.harness import drain, run_to_rest, statuses
from tests.runs.servers import local_server

pytestmark = pytest.mark.django_db

STARTER_FILES = sorted(STARTERS_DIR.glob("*.md"))
TOPICS = {
    "research-report",
    "support-triage",
    "content-pipeline",
    "webhook-summary",
    "scheduled-digest",
    "data-enrichment",
    "multi-agent-debate",
    "incident-runbook",
}


def test_the_catalog_has_the_starters_people_ask_for():
    assert {path.stem for path in STARTER_FILES} >= TOPICS
    assert len(STARTER_FILES) >= 8


@pytest.mark.parametrize("path", STARTER_FILES, ids=lambda p: p.stem)
def test_every_starter_compiles_cleanly_with_builtin_models_only(path):
    starter = parse_starter(path)
    assert starter.name and starter.description and starter.category and starter.tags
    models = {agent["model"] for agent in starter.definition["agents"]}
    assert models <= {"builtin/echo", "builtin/script"}
    for node in starter.definition["nodes"]:
        if node["type"] == "agent":
            assert node["config"]["prompt"].strip()


def test_load_starters_is_idempotent():
    first = load_starters()
    assert first["created"] == len(STARTER_FILES)
    stamps = dict(StarterTemplate.objects.values_list("id", "updated_at"))
    second = load_starters()
    assert second == {
        "created": 0,
        "updated": 0,
        "unchanged": len(STARTER_FILES),
        "removed": 0,
    }
    assert dict(StarterTemplate.objects.values_list("id", "updated_at")) == stamps


def test_a_changed_file_updates_its_row_and_a_deleted_one_is_removed(tmp_path):
    for path in STARTER_FILES[:2]:
        (tmp_path / path.name).write_text(path.read_text())
    load_starters(tmp_path)
    first, second = STARTER_FILES[:2]
    edited = (tmp_path / first.name).read_text().replace("tags: ", "tags: extra, ", 1)
    (tmp_path / first.name).write_text(edited)
    (tmp_path / second.name).unlink()
    assert load_starters(tmp_path) == {"created": 0, "updated": 1, "unchanged": 0, "removed": 1}
    assert list(StarterTemplate.objects.values_list("id", flat=True)) == [first.stem]
    assert StarterTemplate.objects.get().tags[0] == "extra"


def test_the_management_command_loads_the_catalog(capsys):
    call_command("load_starters")
    call_command("load_starters")
    assert StarterTemplate.objects.count() == len(STARTER_FILES)
    assert f"{len(STARTER_FILES)} unchanged" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("# No front matter\n## Steps\n### a\n- type: delay\n- seconds: 1\n", "front matter"),
        ("---\ncategory: X\ncolour: red\n---\n# T\n", "key among"),
        ("---\ncategory: X\ntrigger: schedule every day\n---\n# T\n", "cron"),
        ("---\ncategory: X\n---\n# T\n## Steps\n### a\n- type: nope\nx\n", "does not compile"),
        ("---\ncategory: X\n---\n# T\n## Steps\n### a\n- agent: library_agent\nHi\n", "notes"),
    ],
)
def test_a_broken_starter_is_refused_with_the_file_named(tmp_path, source, problem):
    (tmp_path / "broken.md").write_text(source)
    with pytest.raises(StarterError) as caught:
        read_catalog(tmp_path)
    assert "broken.md" in str(caught.value)
    assert problem in str(caught.value)


# --- Every starter runs offline ------------------------------------------------------------


@pytest.fixture
def starter(org):
    load_starters()

    def make(template_id: str) -> Orchestration:
        orchestration = instantiate(StarterTemplate.objects.get(pk=template_id), org)
        assert orchestration.status == "draft"
        return orchestrations.activate(orchestration)

    return make


def approve(client: APIClient, run: Run, **body) -> Run:
    approval = Approval.objects.get(run=run, status="pending")
    response = client.post(f"/api/v1/approvals/{approval.pk}/approve", body, format="json")
    assert response.status_code == 200, response.json()
    drain()
    run.refresh_from_db()
    return run


def deny(client: APIClient, run: Run, comment: str) -> Run:
    approval = Approval.objects.get(run=run, status="pending")
    response = client.post(
        f"/api/v1/approvals/{approval.pk}/deny", {"comment": comment}, format="json"
    )
    assert response.status_code == 200, response.json()
    drain()
    run.refresh_from_db()
    return run


def test_research_report_runs_to_a_markdown_report(starter):
    run = run_to_rest(starter("research-report"), {"topic": "heat pumps in cold climates"})
    assert run.status == "succeeded", run.error
    assert run.output.startswith("**Research report: heat pumps in cold climates**")
    assert "executives" in run.output
    assert set(statuses(run).values()) == {"succeeded"}


def test_support_triage_waits_for_approval_then_sends_the_reply(starter, editor):
    ticket = {"subject": "Checkout is down", "body": "Nobody can pay since 9am.", "plan": "free"}
    run = run_to_rest(starter("support-triage"), ticket)
    assert run.status == "paused"
    assert statuses(run)["approve_reply"] == "waiting"
    run = approve(editor, run, comment="good")
    assert run.status == "succeeded", run.error
    assert run.output["action"] == "reply"
    assert (run.output["urgency"], run.output["area"]) == ("urgent", "product")
    assert statuses(run)["escalate"] == "skipped"


def test_support_triage_escalates_a_denied_reply(starter, editor):
    ticket = {
        "subject": "Refund for invoice 42",
        "body": "I was charged twice.",
        "plan": "enterprise",
    }
    run = run_to_rest(starter("support-triage"), ticket)
    run = deny(editor, run, "Needs a billing specialist")
    assert run.status == "succeeded", run.error
    assert run.output == {
        "action": "escalate",
        "urgency": "high",
        "area": "billing",
        "reason": "Needs a billing specialist",
        "queue": "tier-2-billing",
    }
    assert statuses(run)["send"] == "skipped"


@pytest.mark.parametrize(
    ("response", "revised"),
    [({"decision": "publish"}, False), ({"decision": "revise", "notes": "Shorter intro"}, True)],
)
def test_content_pipeline_pauses_for_the_editor_and_publishes(starter, editor, response, revised):
    run = run_to_rest(starter("content-pipeline"), {"topic": "Zero-downtime migrations"})
    assert run.status == "paused"
    assert Approval.objects.get(run=run).step_id == "editor_review"
    run = approve(editor, run, response=response)
    assert run.status == "succeeded", run.error
    assert run.output["channel"] == "blog"
    assert run.output["revised"] is revised
    assert statuses(run)["revise"] == ("succeeded" if revised else "skipped")
    if revised:
        assert "Shorter intro" in run.output["body"]


def test_content_pipeline_records_a_rejection(starter, editor):
    run = run_to_rest(starter("content-pipeline"), {"topic": "Zero-downtime migrations"})
    run = approve(editor, run, response={"decision": "reject", "notes": "Off-brand"})
    assert run.status == "succeeded", run.error
    assert run.output["rejected"] is True
    assert run.output["editor_notes"] == "Off-brand"


def test_webhook_summary_starts_from_a_signed_webhook(editor):
    load_starters()
    created = editor.post(
        "/api/v1/templates/webhook-summary/instantiate", {"name": "Deploy hook"}, format="json"
    ).json()
    trigger = created["triggers"][0]
    assert trigger["kind"] == "webhook" and trigger["signing_secret"].startswith("whsec_")
    orchestrations.activate(Orchestration.objects.get(pk=created["id"]))
    body = json.dumps(
        {"action": "deployed", "repository": {"name": "shop"}, "title": "v2.3.1"}
    ).encode()
    now = int(time.time())
    response = APIClient().generic(
        "POST",
        trigger["webhook_url"],
        body,
        content_type="application/json",
        HTTP_X_ORCHESTRATOR_SIGNATURE=f"t={now},v1={sign(trigger['signing_secret'], now, body)}",
    )
    assert response.status_code == 202, response.content
    drain()
    run = Run.objects.get(pk=response.json()["run_id"])
    assert run.status == "succeeded", run.error
    assert run.output["source"] == "github"
    assert run.output["kind"] == "deployed"
    assert run.output["text"].startswith("[github] deployed: Summarize this deployed event")
    assert run.output["fields"] == ["action", "repository", "title"]


def test_scheduled_digest_has_a_schedule_and_runs_on_its_defaults(starter):
    orchestration = starter("scheduled-digest")
    trigger = orchestration.triggers.get()
    assert (trigger.kind, trigger.cron_expression, trigger.timezone) == (
        "schedule",
        "0 8 * * 1-5",
        "UTC",
    )
    run = run_to_rest(orchestration, {}, trigger_kind="schedule", trigger_ref=trigger.pk)
    assert run.status == "succeeded", run.error
    assert run.output.startswith("**Engineering digest · the last 24 hours**")
    assert "Topics: releases · incidents · customer feedback." in run.output


def test_data_enrichment_falls_back_when_the_lookup_fails(starter):
    # A loopback address is refused by the SSRF guard: the lookup fails at once, offline.
    data = {"company": "Acme", "github_org": "acme", "api_base": "http://127.0.0.1:9"}
    run = run_to_rest(starter("data-enrichment"), data)
    assert run.status == "succeeded", run.error
    assert statuses(run)["lookup"] == "failed"
    record = run.output["record"]
    assert record["enriched"] is False
    assert record["display_name"] == "Acme"
    assert record["lookup_error"]
    assert "the lookup found nothing" in run.output["brief"]


def test_data_enrichment_merges_what_the_lookup_found(starter, settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with local_server() as server:
        data = {"company": "Acme", "github_org": "acme", "api_base": server.url}
        run = run_to_rest(starter("data-enrichment"), data)
    assert run.status == "succeeded", run.error
    assert server.hits["/orgs/acme"] == 1
    assert run.output["record"]["enriched"] is True
    assert run.output["record"]["lookup_error"] is None


def test_multi_agent_debate_runs_both_sides_and_a_verdict(starter):
    run = run_to_rest(starter("multi-agent-debate"), {"motion": "Adopt GraphQL"})
    assert run.status == "succeeded", run.error
    for part in ("**For.**", "**Against.**", "**Rebuttal (for).**", "**Verdict.**"):
        assert part in run.output
    assert set(statuses(run).values()) == {"succeeded"}


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_incident_runbook_gates_the_status_update(starter, editor, decision):
    data = {"service": "checkout-api", "symptom": "5xx on pay", "severity": "sev1"}
    run = run_to_rest(starter("incident-runbook"), data)
    assert run.status == "paused"
    run = approve(editor, run) if decision == "approve" else deny(editor, run, "legal review")
    assert run.status == "succeeded", run.error
    assert run.output.startswith("**SEV1 · checkout-api: 5xx on pay**")
    assert "exec-on-call" in run.output
    expected = "Published (approved by" if decision == "approve" else "Not published (legal review)"
    assert expected in run.output
