"""Steps that wait for people (approval, human_input): the step waits, an Approval records the
question, and the run pauses, holding no worker. Answering is `approvals.services.decide`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from approvals.models import SYSTEM, Approval, ApprovalKind, ApprovalStatus
from core.types import Pk
from orchestrator.definition import TemplateError, render
from runs.engine import StepStatus

if TYPE_CHECKING:
    from runs.services.progress import Progress


def human_request(progress: Progress, node: Mapping[str, Any]) -> dict[str, Any]:
    """What a person is asked: the prompt and context rendered, the form fields as declared."""
    config = node["config"]
    context = progress.context()
    try:
        prompt = render(config.get("prompt", ""), context)
        agent_context = render(config.get("agent_context", ""), context)
    except TemplateError as exc:
        prompt, agent_context = config.get("prompt", ""), f"(template error: {exc})"
    return {
        "step_id": node["id"],
        "kind": ApprovalKind.APPROVAL if node["type"] == "approval" else ApprovalKind.INPUT,
        "prompt": str(prompt),
        "fields": config.get("fields", []),
        "agent_context": str(agent_context),
    }


def ask_for_budget(progress: Progress, limit: Decimal) -> None:
    """budget_action approve: hold the run and ask whether to raise its credit limit."""
    run = progress.run
    run.budget_hold = True
    prompt = (
        f"Cost limit exceeded: ${run.cost_usd:.2f} > max ${limit:.2f}. "
        "Approve to raise the limit for this run and go on; deny to stop it."
    )
    fields = [
        {
            "name": "credit_limit",
            "type": "number",
            "label": "New limit (USD)",
            "options": [],
            "required": False,
        }
    ]
    approval = Approval.objects.create(
        organization_id=run.organization_id,
        run=run,
        step_id="",
        kind=ApprovalKind.APPROVAL,
        prompt=prompt,
        fields=fields,
        expires_at=progress.now + timedelta(days=7),
    )
    progress.log.add(
        "human_input_required",
        run_id=str(run.pk),
        approval_id=str(approval.pk),
        step_id=None,
        kind="budget",
        prompt=prompt,
        fields=fields,
        agent_context="",
    )


def start_human_step(progress: Progress, node: Mapping[str, Any]) -> None:
    config = node["config"]
    request = human_request(progress, node)
    step = progress.new_step(node["id"], StepStatus.WAITING)
    progress.flush_steps()
    escalate_after = config.get("escalate_after_s")
    expires_at = progress.now + timedelta(seconds=config["timeout_s"])
    approval = Approval.objects.create(
        organization_id=progress.run.organization_id,
        run=progress.run,
        step_run=step,
        step_id=node["id"],
        kind=request["kind"],
        prompt=request["prompt"],
        fields=request["fields"],
        agent_context=request["agent_context"],
        approvers=config.get("approvers", []),
        escalate_to=config.get("escalate_to", []),
        escalate_at=progress.now + timedelta(seconds=escalate_after) if escalate_after else None,
        expires_at=expires_at,
        on_timeout=config.get("on_timeout", "deny"),
        on_deny=config.get("on_deny", "fail"),
    )
    step.input = {**request, "approval_id": str(approval.pk)}
    step.save(update_fields=["input"])
    progress.log.add("step_start", node["id"], type=node["type"], name=node["name"], attempt=1)
    progress.log.add(
        "human_input_required",
        node["id"],
        run_id=str(progress.run.pk),
        approval_id=str(approval.pk),
        **request,
        expires_at=expires_at.isoformat(),
    )


def cancel_pending(run_id: Pk) -> int:
    """A cancelled or timed-out run cancels the questions it was asking."""
    return Approval.objects.filter(run_id=run_id, status=ApprovalStatus.PENDING).update(
        status=ApprovalStatus.CANCELLED, decided_at=timezone.now(), decided_by_name=SYSTEM
    )
