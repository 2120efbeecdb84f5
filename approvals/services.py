"""Deciding approvals and input forms: exactly once, by someone allowed to, then the run goes on.

The run row is locked before the approval row, in the same order as every other state change,
so two people clicking at the same moment get one 200 and one 409.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from approvals.models import SYSTEM, YES_NO_KINDS, Approval, ApprovalKind, ApprovalStatus
from core.domain_errors import Conflict, Forbidden, InvalidRequest
from core.tenancy import ServiceAccount
from core.types import Pk
from runs.engine import ErrorCode, StepStatus
from runs.services.progress import Progress
from runs.services.waiting import go_on_with_tool_calls


def allowed_deciders(approval: Approval) -> list[str]:
    """Empty means any editor of the organization."""
    if not approval.approvers:
        return []
    deciders: list[str] = approval.approvers + (
        approval.escalate_to if approval.escalated_at else []
    )
    return deciders


def _check_decider(approval: Approval, username: str) -> None:
    allowed = allowed_deciders(approval)
    if allowed and username not in allowed:
        raise Forbidden(f"Only {', '.join(allowed)} may decide this {approval.kind}.")


def _coerce(field: dict[str, Any], value: Any) -> tuple[Any, str | None]:
    kind = field["type"]
    if kind in ("text", "textarea"):
        return (value, None) if isinstance(value, str) else (value, "must be text")
    if kind == "select":
        if value not in field.get("options", []):
            return value, f"must be one of {', '.join(field.get('options', []))}"
        return value, None
    if kind == "number":
        if isinstance(value, bool):
            return value, "must be a number"
        if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
            return value, None
        try:
            number = float(value)
        except (TypeError, ValueError):
            return value, "must be a number"
        if not math.isfinite(number):
            # "NaN", "inf" and "1e999" parse, but JSON (and the database's JSON check) has no
            # such numbers: storing one would fail with a server error, not a field error.
            return value, "must be a finite number"
        return (int(number) if number.is_integer() else number), None
    if isinstance(value, bool):
        return value, None
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true", None
    return value, "must be true or false"


def validate_response(fields: list[dict[str, Any]], response: Any) -> Any:
    """Check a form answer against its declared fields; a plain string answers a form with one
    (or no) field."""
    if isinstance(response, str):
        if not fields:
            return response
        if len(fields) == 1:
            response = {fields[0]["name"]: response}
        else:
            raise InvalidRequest(
                "This form has several fields: answer with an object.",
                fields={
                    "response": [f"expected an object with {', '.join(f['name'] for f in fields)}"]
                },
            )
    if response is None:
        response = {}
    if not isinstance(response, dict):
        raise InvalidRequest(
            "response must be an object or a string.",
            fields={"response": ["must be an object or a string"]},
        )
    problems: dict[str, list[str]] = {}
    declared = {field["name"]: field for field in fields}
    for key in response:
        if fields and key not in declared:
            problems[f"response.{key}"] = [f"unknown field; the form has {', '.join(declared)}"]
    cleaned = dict(response) if not fields else {}
    for name, field in declared.items():
        value = response.get(name)
        if value is None or value == "":
            if field.get("required"):
                problems[f"response.{name}"] = ["is required"]
            continue
        cleaned[name], problem = _coerce(field, value)
        if problem:
            problems[f"response.{name}"] = [problem]
    if problems:
        path, messages = next(iter(problems.items()))
        raise InvalidRequest(f"{path}: {messages[0]}", fields=problems)
    return cleaned


def _settle_budget(
    progress: Progress, approval: Approval, *, approved: bool, decided_by: str
) -> None:
    """A budget gate: raise the run's limit and go on, or stop it over its limit."""
    run = progress.run
    progress.log.add(
        "approval_decided",
        approval_id=str(approval.pk),
        status=approval.status,
        comment=approval.comment,
        decided_by=decided_by,
        kind="budget",
    )
    run.budget_hold = False
    if approved:
        asked = (approval.response or {}).get("credit_limit")
        if asked is not None:
            run.credit_limit = Decimal(str(asked))
        else:
            assert run.credit_limit is not None  # the question is asked once a run passes it
            run.credit_limit = run.cost_usd + run.credit_limit
    else:
        run.error = {
            "code": ErrorCode.COST_LIMIT_EXCEEDED,
            "detail": f"Cost limit exceeded: ${run.cost_usd:.2f} > max ${run.credit_limit:.2f}",
            "step_id": None,
        }
        run.cancel_requested = True
    progress.advance()


def _check_budget(approval: Approval, progress: Progress, response: Any) -> Any:
    if response is None:
        return None
    cleaned = validate_response(approval.fields, response)
    asked = cleaned.get("credit_limit")
    if asked is not None and Decimal(str(asked)) <= progress.run.cost_usd:
        raise InvalidRequest(
            f"The new limit must be above what the run has cost: ${progress.run.cost_usd:.2f}.",
            fields={"response.credit_limit": ["must be above the run's cost so far"]},
        )
    return cleaned


def _settle(
    progress: Progress,
    approval: Approval,
    *,
    approved: bool,
    decided_by: str,
    code: str = ErrorCode.APPROVAL_DENIED,
) -> None:
    """Turn the decision into the waiting step's result, and let the run go on."""
    if not approval.step_id:
        _settle_budget(progress, approval, approved=approved, decided_by=decided_by)
        return
    step = progress.steps.get(approval.step_id)
    if step is None or step.pk != approval.step_run_id or step.status != StepStatus.WAITING:
        return
    progress.log.add(
        "approval_decided",
        approval.step_id,
        approval_id=str(approval.pk),
        status=approval.status,
        comment=approval.comment,
        decided_by=decided_by,
    )
    if approval.kind == ApprovalKind.TOOL_CALL:
        # Approved or not, the agent goes on: the call runs, or the model is told it was denied.
        go_on_with_tool_calls(progress, step)
        progress.advance()
        return
    output: Any
    if approval.kind == ApprovalKind.APPROVAL:
        output = {"approved": approved, "comment": approval.comment, "decided_by": decided_by}
    else:
        output = approval.response
    if approved or approval.on_deny == "continue":
        progress.succeed(step, output)
    else:
        if code == ErrorCode.APPROVAL_EXPIRED:
            message = f"Nobody answered the {approval.kind} before its timeout."
        else:
            reason = f" ({approval.comment})" if approval.comment else ""
            message = f"The {approval.kind} was denied by {decided_by}{reason}."
        progress.fail(step, message, retryable=False, code=code)
    progress.advance()


def decide(
    approval_id: Pk,
    *,
    approve: bool,
    user: User | ServiceAccount,
    comment: str = "",
    response: Any = None,
) -> Approval:
    """Take one person's decision, once; past the gate's timeout, the timeout decides instead."""
    with transaction.atomic():
        run_id = Approval.objects.values_list("run_id", flat=True).get(pk=approval_id)
        progress = Progress.lock(run_id)
        approval = Approval.objects.select_for_update().get(pk=approval_id)
        if approval.status != ApprovalStatus.PENDING:
            raise Conflict(f"This {approval.kind} is not pending: it is {approval.status}.")
        username = user.get_username()
        _check_decider(approval, username)
        if not _is_due(approval, progress):
            if approve and approval.kind == ApprovalKind.INPUT:
                approval.response = validate_response(approval.fields, response)
            elif approve and not approval.step_id:
                approval.response = _check_budget(approval, progress, response)
            elif response is not None:
                approval.response = response
            approval.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.DENIED
            approval.comment = comment or ""
            approval.decided_by = None if isinstance(user, ServiceAccount) or not user.pk else user
            approval.decided_by_name = username
            approval.decided_at = progress.now
            approval.save()
            _settle(progress, approval, approved=approve, decided_by=username)
            progress.save()
            return approval
        # Past its timeout but not reaped yet (the reaper passes every few seconds): the timeout
        # decides now, as it would have a moment later, and is committed before the 409.
        _expire(progress, approval)
        progress.save()
    raise Conflict(
        f"This {approval.kind} expired at {approval.expires_at:%Y-%m-%dT%H:%M:%SZ} and was "
        f"decided by its timeout: it is {approval.status}."
    )


def _is_due(approval: Approval, progress: Progress) -> bool:
    return approval.expires_at is not None and approval.expires_at <= progress.now


def _expire(progress: Progress, approval: Approval) -> None:
    approve = approval.on_timeout == "approve" and approval.kind in YES_NO_KINDS
    approval.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.EXPIRED
    approval.comment = "Decided automatically: no answer before the timeout."
    approval.decided_by_name = SYSTEM
    approval.decided_at = progress.now
    approval.save()
    _settle(
        progress, approval, approved=approve, decided_by=SYSTEM, code=ErrorCode.APPROVAL_EXPIRED
    )


def expire(approval_id: Pk) -> None:
    """Past `timeout_s`: approve or deny as the node's `on_timeout` says, as the system."""
    with transaction.atomic():
        run_id = Approval.objects.values_list("run_id", flat=True).get(pk=approval_id)
        progress = Progress.lock(run_id)
        approval = Approval.objects.select_for_update().get(pk=approval_id)
        if approval.status != ApprovalStatus.PENDING or not _is_due(approval, progress):
            return
        _expire(progress, approval)
        progress.save()


def escalate(approval_id: Pk) -> None:
    with transaction.atomic():
        run_id = Approval.objects.values_list("run_id", flat=True).get(pk=approval_id)
        progress = Progress.lock(run_id)
        approval = Approval.objects.select_for_update().get(pk=approval_id)
        if approval.status != ApprovalStatus.PENDING or approval.escalated_at is not None:
            return
        approval.escalated_at = progress.now
        approval.save(update_fields=["escalated_at"])
        progress.log.add(
            "approval_escalated",
            approval.step_id,
            approval_id=str(approval.pk),
            escalate_to=approval.escalate_to,
        )
        progress.save()


def reap(now: datetime) -> dict[str, int]:
    due = Approval.objects.filter(status=ApprovalStatus.PENDING)
    expired = list(due.filter(expires_at__lte=now).values_list("pk", flat=True))
    for approval_id in expired:
        expire(approval_id)
    escalating = list(
        due.filter(escalate_at__lte=now, escalated_at__isnull=True).values_list("pk", flat=True)
    )
    for approval_id in escalating:
        escalate(approval_id)
    return {"expired": len(expired), "escalated": len(escalating)}
