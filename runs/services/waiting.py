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
from runs.engine import RUN_TERMINAL, StepStatus
from runs.models import Run, StepRun
from runs.services import dispatch
from runs.services.transitions import move_step

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


def ask_about_tool_calls(progress: Progress, step: StepRun, calls: list[dict[str, Any]]) -> None:
    """An agent step's model asked for tools whose calls wait for a person: the step waits (its
    transcript holds the conversation so far), and one approval of kind `tool_call` asks about
    the calls. The step's earlier decided approvals stay in the run's list, unlinked from it."""
    first = calls[0]
    approval_config = first["approval"]
    names = ", ".join(dict.fromkeys(call["tool"] for call in calls))
    prompt = (
        f"The agent asks to call {names}. Allow it?"
        if len(calls) == 1
        else f"The agent asks to make {len(calls)} calls ({names}). Allow them all?"
    )
    move_step(step, StepStatus.WAITING, progress.now)
    progress.store(step)
    progress.steps[step.node_id] = step
    Approval.objects.filter(step_run=step).update(step_run=None)
    expires_at = progress.now + timedelta(
        seconds=min(float(c["approval"].get("timeout_s") or 7 * 86400) for c in calls)
    )
    payload = {
        "tool": first["tool"],
        "args": first["args"],
        "calls": [{k: call[k] for k in ("turn", "tool_call_id", "tool", "args")} for call in calls],
    }
    approval = Approval.objects.create(
        organization_id=progress.run.organization_id,
        run=progress.run,
        step_run=step,
        step_id=step.node_id,
        kind=ApprovalKind.TOOL_CALL,
        prompt=prompt,
        payload=payload,
        approvers=sorted({a for c in calls for a in c["approval"].get("approvers") or []}),
        expires_at=expires_at,
        on_timeout=approval_config.get("on_timeout") or "deny",
        on_deny="continue",
    )
    progress.log.add(
        "human_input_required",
        step.node_id,
        run_id=str(progress.run.pk),
        approval_id=str(approval.pk),
        step_id=step.node_id,
        kind=ApprovalKind.TOOL_CALL,
        prompt=prompt,
        fields=[],
        agent_context="",
        tool=payload["tool"],
        args=payload["args"],
        calls=payload["calls"],
        expires_at=expires_at.isoformat(),
    )


def go_on_with_tool_calls(progress: Progress, step: StepRun) -> None:
    """The tool calls the step waited for are decided: a worker takes it up again, and goes on
    from its transcript with the decisions (`tool_call_decisions`) and the results of its
    orchestration calls' child runs. Not while a question or a child run is still open: what
    closes the last one goes on."""
    if Approval.objects.filter(step_run=step, status=ApprovalStatus.PENDING).exists():
        return
    if Run.objects.filter(tool_call_step=step).exclude(status__in=RUN_TERMINAL).exists():
        return
    move_step(step, StepStatus.PENDING, progress.now)
    progress.store(step)
    dispatch.enqueue_step(step.pk)


def tool_call_decisions(run_id: Pk, node_id: str) -> list[dict[str, Any]]:
    """Every decision taken on the tool calls of a step of a run (the agent keeps those its
    conversation still waits for): approved, denied, or decided by a timeout."""
    decided = Approval.objects.filter(
        run_id=run_id, step_id=node_id, kind=ApprovalKind.TOOL_CALL
    ).exclude(status__in=[ApprovalStatus.PENDING, ApprovalStatus.CANCELLED])
    return [
        {
            "turn": call.get("turn"),
            "tool_call_id": call.get("tool_call_id"),
            "approved": approval.status == ApprovalStatus.APPROVED,
            "comment": approval.comment,
            "by": approval.decided_by_name,
        }
        for approval in decided.order_by("created_at")
        for call in (approval.payload or {}).get("calls", [])
    ]
