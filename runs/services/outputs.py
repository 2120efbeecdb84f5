"""A run's output after it ended: public share links, refining it with an agent, its versions.

Version 1 is the run's original output. It is stored only when the output is first refined;
until then `versions` presents it from the run itself, so reads never write.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from core.domain_errors import Conflict
from core.types import Actor
from runs.engine import RunStatus, StepStatus
from runs.engine.nodes.agent import run_agent
from runs.engine.nodes.base import AgentSpec, StepContext, StepFailed, StepResult
from runs.engine.redaction import Redactor
from runs.models import OutputVersion, RefineStatus, Run, ShareLink, StepRun
from runs.services import dispatch, resolve
from runs.services.graphs import definition_of

logger = logging.getLogger(__name__)

TOKEN_BYTES = 32
REFINE_TIMEOUT_S = 120.0
# Past its model call's deadline, this long for the worker to store the result.
REFINE_GRACE_S = 60.0
LOST_REFINE = "The refine did not finish (its worker was lost); ask again."
REFINE_INSTRUCTIONS = (
    "Rewrite the output below as the instructions ask. Answer with the complete new output "
    "only, {form}.\n\nInstructions:\n{prompt}\n\nOutput:\n{output}"
)


# --- sharing -------------------------------------------------------------------------------


@transaction.atomic
def share(run: Run) -> tuple[ShareLink, bool]:
    """The run's live share link, made if there is none. Returns (link, created).

    The run row lock makes two concurrent shares agree on one token.
    """
    Run.objects.select_for_update().filter(pk=run.pk).first()
    link = ShareLink.objects.filter(run_id=run.pk, revoked_at__isnull=True).first()
    if link is not None:
        return link, False
    link = ShareLink.objects.create(run_id=run.pk, token=secrets.token_urlsafe(TOKEN_BYTES))
    return link, True


def unshare(run: Run) -> None:
    """Revoke the live link, if any. The row stays so the old token keeps answering 404."""
    ShareLink.objects.filter(run_id=run.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def shared_run(token: str) -> Run | None:
    """The run behind a live token, unless its orchestration has been deleted since."""
    link = (
        ShareLink.objects.select_related("run__orchestration")
        .filter(token=token, revoked_at__isnull=True, run__orchestration__deleted_at__isnull=True)
        .first()
    )
    return link.run if link is not None else None


# --- versions ------------------------------------------------------------------------------


def _original(run: Run) -> OutputVersion:
    return OutputVersion(
        run=run,
        version=1,
        output=run.output,
        output_type=run.output_type,
        prompt="",
        requested_by_name=run.requested_by_name,
        created_at=run.finished_at or run.created_at,
    )


def versions(run: Run) -> list[OutputVersion]:
    """Newest first. A succeeded run always has version 1; an unfinished or failed one none."""
    stored = list(OutputVersion.objects.filter(run=run).order_by("-version"))
    if stored:
        return stored
    return [_original(run)] if run.status == RunStatus.SUCCEEDED else []


def version(run: Run, number: int) -> OutputVersion | None:
    return next((v for v in versions(run) if v.version == number), None)


def newest_version(run: Run) -> OutputVersion | None:
    found = versions(run)
    return found[0] if found else None


# --- refining ------------------------------------------------------------------------------


@transaction.atomic
def refine(run: Run, prompt: str, requested_by: Actor = None) -> None:
    """Mark the run refining and hand the rewrite to a worker once this commits.

    The task carries the version it refines, so a duplicate delivery, or a task that arrives
    after another refine already stored a newer version, stores nothing.
    """
    locked = Run.objects.select_for_update().get(pk=run.pk)
    if locked.status != RunStatus.SUCCEEDED:
        raise Conflict(f"Only a succeeded run can be refined; this run is {locked.status}.")
    if locked.refine_status == RefineStatus.REFINING:
        raise Conflict("This run's output is already being refined; wait until it finishes.")
    base = OutputVersion.objects.filter(run=locked).aggregate(n=Max("version"))["n"]
    if base is None:
        _original(locked).save()
        base = 1
    locked.refine_status = RefineStatus.REFINING
    locked.refine_error = ""
    locked.refine_started_at = timezone.now()
    locked.save(update_fields=["refine_status", "refine_error", "refine_started_at"])
    name = requested_by.get_username() if requested_by is not None else ""
    run_id = str(locked.pk)

    dispatch.enqueue_refine(run_id, prompt, base, name)


def refine_agent(run: Run) -> AgentSpec:
    """The agent of the run's last agent step (its model, provider and credentials), else the
    default agent (the `DEFAULT_MODEL` setting), so the rewrite sounds like the original; without
    its tools, as a rewrite has nothing to call (an MCP tool may act on the world)."""
    step = (
        StepRun.objects.filter(run=run, node_type="agent", status=StepStatus.SUCCEEDED)
        .order_by("-finished_at")
        .first()
    )
    ref = (step.input or {}).get("agent") if step is not None else None
    return resolve.agent(run, definition_of(run), {"agent": ref}, tools=False)


def _as_text(output: Any) -> str:
    return output if isinstance(output, str) else json.dumps(output, indent=2, ensure_ascii=False)


def _rewrite(run: Run, current: OutputVersion, prompt: str) -> StepResult:
    wants_json = current.output_type == "json"
    text = REFINE_INSTRUCTIONS.format(
        form="as JSON" if wants_json else "as markdown",
        prompt=prompt,
        output=_as_text(current.output),
    )
    agent = refine_agent(run)
    # As for a step: what the model server sends back (an answer, an error quoting the key it
    # refused) is masked with the agent's secrets, its text made storable, before it is kept.
    hide = Redactor(agent.secrets())
    ctx = StepContext(
        run_id=str(run.pk),
        step_id="refine",
        attempt=current.version,
        config={"prompt": text, "response_format": "json" if wants_json else "text"},
        # A refine happens after the run ended: its turns are not part of the run's trace.
        emit=lambda type, data: None,
        deadline=time.monotonic() + REFINE_TIMEOUT_S,
        net=resolve.net_policy(),
        agent=agent,
    )
    try:
        result = run_agent(ctx)
    except StepFailed as exc:
        exc.message = hide(exc.message)
        raise
    result.output = hide(result.output)
    return result


def perform_refine(run_id: str, prompt: str, base_version: int, requested_by: str = "") -> None:
    """Rewrite version `base_version` with the agent and store it as the next version.

    The model is called outside any transaction, so the run row is not locked for minutes.
    """
    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.refine_status != RefineStatus.REFINING:
        return
    current = OutputVersion.objects.filter(run=run, version=base_version).first()
    if current is None or _is_stale(run, base_version):
        return
    try:
        result = _rewrite(run, current, prompt)
    except StepFailed as exc:
        _fail(run_id, base_version, exc.message)
        return
    except Exception as exc:  # a bug must end the refine, never leave it refining forever
        logger.exception("refine of run %s crashed", run_id)
        _fail(run_id, base_version, f"internal error: {exc.__class__.__name__}: {exc}")
        return
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=run_id)
        if locked.refine_status != RefineStatus.REFINING or _is_stale(locked, base_version):
            return
        cost = None if result.cost_usd is None else Decimal(str(result.cost_usd))
        OutputVersion.objects.create(
            run=locked,
            version=base_version + 1,
            output=result.output,
            output_type=current.output_type,
            prompt=prompt,
            requested_by_name=requested_by,
            tokens_input=result.tokens_input,
            tokens_output=result.tokens_output,
            cost_usd=cost,
        )
        locked.output = result.output
        locked.refine_status = RefineStatus.IDLE
        # The rewrite was paid for on this run's behalf: its totals say so.
        locked.cost_usd += cost or 0
        locked.unpriced = locked.unpriced or cost is None
        locked.tokens_input += result.tokens_input
        locked.tokens_output += result.tokens_output
        locked.save(
            update_fields=[
                "output",
                "refine_status",
                "cost_usd",
                "unpriced",
                "tokens_input",
                "tokens_output",
            ]
        )


def _is_stale(run: Run, base_version: int) -> bool:
    return OutputVersion.objects.filter(run=run, version__gt=base_version).exists()


def reap_lost_refines(now: datetime) -> int:
    """A refine still marked refining long after its model call must have ended lost its
    worker (the broker would only redeliver the task after its visibility timeout, an hour on
    Redis): fail it, so the user sees why and can ask again."""
    since = now - timedelta(seconds=REFINE_TIMEOUT_S + REFINE_GRACE_S)
    lost = Run.objects.filter(refine_status=RefineStatus.REFINING).filter(
        # Without a start time: asked for before start times were kept, long ago.
        Q(refine_started_at__lt=since) | Q(refine_started_at__isnull=True)
    )
    return lost.update(refine_status=RefineStatus.FAILED, refine_error=LOST_REFINE)


def _fail(run_id: str, base_version: int, message: str) -> None:
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=run_id)
        if locked.refine_status != RefineStatus.REFINING or _is_stale(locked, base_version):
            return
        locked.refine_status = RefineStatus.FAILED
        locked.refine_error = message
        locked.save(update_fields=["refine_status", "refine_error"])
