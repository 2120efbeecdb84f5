"""Human in the loop: gates pause runs, are decided once, expire, escalate, and resume runs."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone

from approvals.models import Approval
from runs.models import Run, RunEvent
from runs.services import timers
from tests.runs.harness import drain, statuses

pytestmark = pytest.mark.django_db


def gate(**config) -> dict:
    return {
        "id": "review",
        "type": "approval",
        "config": {"prompt": "Ship {{ input.x }}?", **config},
    }


def form() -> dict:
    return {
        "id": "ask",
        "type": "human_input",
        "config": {
            "prompt": "Please review the draft.",
            "fields": [
                {
                    "name": "decision",
                    "type": "select",
                    "options": "approve,reject",
                    "required": True,
                },
                {"name": "notes", "type": "text"},
                {"name": "score", "type": "number"},
            ],
            "agent_context": "Draft: {{ input.x }}",
        },
    }


def publish() -> dict:
    return {
        "id": "publish",
        "type": "transform",
        "config": {"output": "{{ steps.review.output.approved }}"},
    }


@pytest.fixture
def flow(editor):
    def make(nodes, edges, **fields):
        body = {
            "name": fields.pop("name", "Gated"),
            "status": "active",
            "definition": {
                "nodes": nodes,
                "edges": edges,
                "inputs": [{"name": "x", "type": "string"}],
            },
            **fields,
        }
        response = editor.post("/api/v1/orchestrations", body, format="json")
        assert response.status_code == 201, response.json()
        return response.json()

    return make


def start(client, flow_data, x="v1"):
    run = client.post(
        f"/api/v1/orchestrations/{flow_data['id']}/runs", {"input": {"x": x}}, format="json"
    ).json()
    drain()
    return Run.objects.get(pk=run["id"])


def test_a_gate_pauses_the_run_and_lists_a_pending_approval(editor, flow):
    run = start(editor, flow([gate(), publish()], [{"source": "review", "target": "publish"}]))
    assert run.status == "paused"
    detail = editor.get(f"/api/v1/runs/{run.pk}").json()
    required = detail["human_input_required"]
    assert required["step_id"] == "review"
    assert required["prompt"] == "Ship v1?"
    items = editor.get("/api/v1/approvals?pending=true").json()["items"]
    assert [(i["step_id"], i["kind"], i["status"]) for i in items] == [
        ("review", "approval", "pending")
    ]
    assert required["approval_id"] == items[0]["id"]
    assert RunEvent.objects.filter(run=run, type="human_input_required").count() == 1
    assert editor.get("/api/v1/approvals?pending=false").json()["items"] == []
    refused = editor.get("/api/v1/approvals?pending=maybe")
    assert refused.status_code == 400
    assert "pending" in refused.json()["fields"]


def test_approving_resumes_the_run_and_the_gate_output_feeds_the_next_step(editor, flow):
    run = start(editor, flow([gate(), publish()], [{"source": "review", "target": "publish"}]))
    approval = Approval.objects.get(run=run)
    response = editor.post(
        f"/api/v1/approvals/{approval.pk}/approve", {"comment": "ok"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "approved"
    drain()
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.output == "true"
    types = list(RunEvent.objects.filter(run=run).values_list("type", flat=True))
    assert "approval_decided" in types


def test_a_second_decision_conflicts(editor, flow):
    run = start(editor, flow([gate()], []))
    approval = Approval.objects.get(run=run)
    assert editor.post(f"/api/v1/approvals/{approval.pk}/approve").status_code == 200
    response = editor.post(f"/api/v1/approvals/{approval.pk}/deny")
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"


def test_deny_fails_the_run_with_approval_denied(editor, flow):
    run = start(editor, flow([gate(), publish()], [{"source": "review", "target": "publish"}]))
    approval = Approval.objects.get(run=run)
    editor.post(f"/api/v1/approvals/{approval.pk}/deny", {"comment": "not yet"}, format="json")
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error["code"] == "approval_denied"
    assert "not yet" in run.error["detail"]


def test_deny_with_on_deny_continue_lets_edges_branch_on_approved(editor, flow):
    data = flow(
        [
            gate(on_deny="continue"),
            publish(),
            {"id": "rework", "type": "transform", "config": {"output": "rework"}},
        ],
        [
            {"source": "review", "target": "publish", "condition": "output.approved"},
            {"source": "review", "target": "rework", "condition": "not output.approved"},
        ],
    )
    run = start(editor, data)
    editor.post(f"/api/v1/approvals/{Approval.objects.get(run=run).pk}/deny")
    drain()
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert statuses(run) == {"review": "succeeded", "publish": "skipped", "rework": "succeeded"}


def test_the_seed_example_run_gate_resume_final_state(editor, flow):
    """POST run -> paused with human_input_required -> resume with the form -> completed."""
    data = flow(
        [
            form(),
            {
                "id": "article",
                "type": "transform",
                "output_key": "article",
                "config": {"output": "# Article\\n{{ steps.ask.output.notes }}"},
            },
        ],
        [{"source": "ask", "target": "article"}],
    )
    first = editor.post(
        f"/api/v1/orchestrations/{data['id']}/runs", {"message": "AI trends"}, format="json"
    ).json()
    drain()
    paused = editor.get(f"/api/v1/runs/{first['id']}").json()
    assert paused["status"] == "paused"
    assert paused["human_input_required"]["fields"][0]["options"] == ["approve", "reject"]
    assert paused["human_input_required"]["agent_context"] == "Draft: AI trends"
    response = editor.post(
        f"/api/v1/runs/{first['id']}/resume",
        {"response": {"decision": "approve", "notes": "Publish it."}, "async": True},
        format="json",
    )
    assert response.status_code == 202, response.content
    drain()
    final = editor.get(f"/api/v1/runs/{first['id']}").json()
    assert final["status"] == "succeeded"
    assert final["shared_state"]["article"] == "# Article\\nPublish it."
    assert final["steps"][0]["output"] == {"decision": "approve", "notes": "Publish it."}


@pytest.mark.parametrize(
    ("response", "field"),
    [
        ({"decision": "maybe"}, "response.decision"),
        ({"notes": "x"}, "response.decision"),
        ({"decision": "approve", "score": "high"}, "response.score"),
        ({"decision": "approve", "colour": "red"}, "response.colour"),
        ("just text", "response"),
    ],
)
def test_bad_field_values_are_refused_with_the_field(editor, flow, response, field):
    run = start(editor, flow([form()], []))
    result = editor.post(
        f"/api/v1/runs/{run.pk}/resume", {"response": response, "async": True}, format="json"
    )
    assert result.status_code == 400
    assert field in result.json()["fields"]
    assert Approval.objects.get(run=run).status == "pending"


@pytest.mark.parametrize("value", ["NaN", "inf", "-Infinity", "1e999"])
def test_a_number_field_refuses_what_json_cannot_hold(editor, flow, value):
    """These parse as floats but are not JSON numbers: a field error, not a server error."""
    run = start(editor, flow([form()], []))
    result = editor.post(
        f"/api/v1/runs/{run.pk}/resume",
        {"response": {"decision": "approve", "score": value}, "async": True},
        format="json",
    )
    assert result.status_code == 400
    assert result.json()["fields"] == {"response.score": ["must be a finite number"]}
    assert Approval.objects.get(run=run).status == "pending"


def test_resume_when_nothing_is_pending_conflicts(editor, flow):
    run = start(editor, flow([publish()], []))
    result = editor.post(f"/api/v1/runs/{run.pk}/resume", {"response": "x"}, format="json")
    assert result.status_code == 409


def test_step_approve_endpoint(editor, flow):
    run = start(editor, flow([gate()], []))
    url = f"/api/v1/runs/{run.pk}/steps/review/approve"
    response = editor.post(url, {"approved": True, "reason": "fine"}, format="json")
    assert response.status_code == 200
    assert editor.post(url, {"approved": True}, format="json").status_code == 409


def test_approvers_restrict_who_may_decide_and_escalation_widens_it(editor, flow, editors):
    _, deputy = editors("boss", "deputy")
    run = start(
        editor, flow([gate(approvers=["boss"], escalate_after_s=60, escalate_to=["deputy"])], [])
    )
    approval = Approval.objects.get(run=run)
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(deputy)
    assert client.post(f"/api/v1/approvals/{approval.pk}/approve").status_code == 403
    [item] = editor.get("/api/v1/approvals?pending=true").json()["items"]
    assert (item["approvers"], item["deciders"]) == (["boss"], ["boss"])
    Approval.objects.filter(pk=approval.pk).update(escalate_at=timezone.now())
    timers.reap()
    assert RunEvent.objects.filter(run=run, type="approval_escalated").count() == 1
    [item] = editor.get("/api/v1/approvals?pending=true").json()["items"]
    assert item["deciders"] == ["boss", "deputy"]
    assert client.post(f"/api/v1/approvals/{approval.pk}/approve").status_code == 200
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_an_expired_gate_is_decided_by_on_timeout(editor, flow):
    denied = start(editor, flow([gate(timeout_s=60)], [], name="Deny"))
    approved = start(editor, flow([gate(timeout_s=60, on_timeout="approve")], [], name="Ok"))
    Approval.objects.update(expires_at=timezone.now())
    timers.reap()
    denied.refresh_from_db()
    approved.refresh_from_db()
    assert (denied.status, denied.error["code"]) == ("failed", "approval_expired")
    assert approved.status == "succeeded"
    assert Approval.objects.get(run=denied).status == "expired"


def test_deciding_a_gate_past_its_timeout_conflicts_even_before_the_reaper_ran(editor, flow):
    denied = start(editor, flow([gate(timeout_s=60)], [], name="Deny"))
    approved = start(editor, flow([gate(timeout_s=60, on_timeout="approve")], [], name="Ok"))
    Approval.objects.update(expires_at=timezone.now())
    for run in (denied, approved):
        approval = Approval.objects.get(run=run)
        response = editor.post(f"/api/v1/approvals/{approval.pk}/approve")
        assert response.status_code == 409
        assert "expired" in response.json()["detail"]
        # The timeout decided, once, as the reaper would have: the click changed nothing.
        assert editor.post(f"/api/v1/approvals/{approval.pk}/deny").status_code == 409
    denied.refresh_from_db()
    approved.refresh_from_db()
    assert (denied.status, denied.error["code"]) == ("failed", "approval_expired")
    assert Approval.objects.get(run=denied).decided_by_name == "system"
    assert approved.status == "succeeded"
    assert Approval.objects.get(run=approved).status == "approved"
    assert RunEvent.objects.filter(type="approval_decided").count() == 2
    assert timers.reap()["expired"] == 0


def test_cancelling_a_paused_run_cancels_its_approvals(editor, flow):
    run = start(editor, flow([gate()], []))
    assert editor.post(f"/api/v1/runs/{run.pk}/cancel").status_code == 202
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert Approval.objects.get(run=run).status == "cancelled"


def test_two_parallel_gates_pend_together_and_both_must_be_answered(editor, flow):
    data = flow(
        [
            {"id": "legal", "type": "approval", "config": {"prompt": "Legal?"}},
            {"id": "brand", "type": "approval", "config": {"prompt": "Brand?"}},
            {"id": "ship", "type": "transform", "config": {"output": "shipped"}},
        ],
        [{"source": "legal", "target": "ship"}, {"source": "brand", "target": "ship"}],
    )
    run = start(editor, data)
    pending = Approval.objects.filter(run=run, status="pending")
    assert pending.count() == 2
    first, second = pending.order_by("step_id")
    editor.post(f"/api/v1/approvals/{first.pk}/approve")
    run.refresh_from_db()
    assert run.status == "paused"
    editor.post(f"/api/v1/approvals/{second.pk}/approve")
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.output == "shipped"


def parallel_gates() -> tuple[list[dict], list[dict]]:
    nodes = [
        {"id": "legal", "type": "approval", "config": {"prompt": "Legal?"}},
        {"id": "brand", "type": "approval", "config": {"prompt": "Brand?"}},
        {"id": "ship", "type": "transform", "config": {"output": "shipped"}},
    ]
    return nodes, [{"source": "legal", "target": "ship"}, {"source": "brand", "target": "ship"}]


def test_denying_one_of_two_parallel_gates_fails_the_run_at_once(editor, flow):
    """No answer to the other gate can save the run: it is withdrawn, not left paused."""
    run = start(editor, flow(*parallel_gates()))
    brand = Approval.objects.get(run=run, step_id="brand")
    response = editor.post(
        f"/api/v1/approvals/{brand.pk}/deny", {"comment": "off-brand"}, format="json"
    )
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error["code"] == "approval_denied"
    assert run.error["step_id"] == "brand"
    assert statuses(run) == {"legal": "cancelled", "brand": "failed", "ship": "cancelled"}
    legal = Approval.objects.get(run=run, step_id="legal")
    assert legal.status == "cancelled"
    assert editor.get("/api/v1/approvals?pending=true").json()["items"] == []
    assert editor.post(f"/api/v1/approvals/{legal.pk}/approve").status_code == 409


def test_a_run_that_fails_elsewhere_withdraws_its_open_gate(editor, flow):
    broken = {"id": "broken", "type": "transform", "config": {"output": "{{ input.x.nope }}"}}
    run = start(editor, flow([gate(), broken], []))
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error["step_id"] == "broken"
    assert Approval.objects.get(run=run).status == "cancelled"


def test_an_expired_gate_beside_a_pending_one_fails_the_run(editor, flow):
    nodes, edges = parallel_gates()
    nodes[0]["config"]["timeout_s"] = 60
    run = start(editor, flow(nodes, edges))
    Approval.objects.filter(step_id="legal").update(expires_at=timezone.now())
    timers.reap()
    run.refresh_from_db()
    assert (run.status, run.error["code"]) == ("failed", "approval_expired")
    assert Approval.objects.get(run=run, step_id="brand").status == "cancelled"


def test_another_org_cannot_see_or_decide_approvals(editor, outsider, flow):
    run = start(editor, flow([gate()], []))
    approval = Approval.objects.get(run=run)
    assert outsider.get("/api/v1/approvals").json()["items"] == []
    for url in (
        f"/api/v1/approvals/{approval.pk}/approve",
        f"/api/v1/approvals/{approval.pk}/deny",
        f"/api/v1/runs/{run.pk}/resume",
        f"/api/v1/runs/{run.pk}/steps/review/approve",
    ):
        response = outsider.post(url, {"response": "x", "approved": True}, format="json")
        assert response.status_code == 404, url
    assert Approval.objects.get(pk=approval.pk).status == "pending"


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_approvals_give_one_decision(editor, flow):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serializes writers; the race needs concurrent connections")
    run = start(editor, flow([gate(), publish()], [{"source": "review", "target": "publish"}]))
    approval = Approval.objects.get(run=run)
    results: list[int] = []
    barrier = threading.Barrier(2)

    def click() -> None:
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {editor.raw_token}")
        barrier.wait()
        results.append(client.post(f"/api/v1/approvals/{approval.pk}/approve").status_code)
        connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200, 409]
    assert RunEvent.objects.filter(run=run, type="approval_decided").count() == 1
