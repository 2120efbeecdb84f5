"""Starting, cancelling and replaying runs."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from core.domain_errors import Conflict, InvalidRequest, OrchestrationNotActive
from core.types import Actor, Pk
from orchestrator.choices import OrchestrationStatus, TriggerKind
from orchestrator.definition.graph import descendants
from orchestrator.models import Orchestration
from runs.engine import RUN_TERMINAL, RunStatus, StepStatus
from runs.models import Run, StepRun
from runs.services.context import latest_attempts
from runs.services.creation import (
    create_run,
    has_step,
    trigger_entry,
)
from runs.services.progress import Progress, change
from runs.services.transitions import move_step, reused_step
from runs.services.waiting import cancel_pending

IDEMPOTENCY_WINDOW = timedelta(hours=24)


@transaction.atomic
def fire(
    orchestration: Orchestration,
    data: Any,
    *,
    trigger_kind: str = TriggerKind.API,
    trigger_ref: Pk | None = None,
    requested_by: Actor = None,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str = "",
    caller: str = "",
    entry_node: str = "",
) -> tuple[Run, bool]:
    """Start a run from outside (API, webhook, schedule). Returns (run, created).

    `entry_node` is the firing trigger's `node_id`, if it names one. An `idempotency_key` is
    scoped to this orchestration and the `caller` (`token:<id>`, `user:<id>`, `trigger:<id>`),
    as Stripe scopes keys to an account: within 24 hours the same key with the same request
    returns the run it started, and with another request is refused (409 `conflict`)."""
    longest = Run._meta.get_field("idempotency_key").max_length or 0
    if len(idempotency_key) > longest:
        # Refused, not cut: two keys that differ only past the cut would be one key, and the
        # second request answered as the first's reuse.
        raise InvalidRequest(
            f"Idempotency-Key is {len(idempotency_key)} characters long; at most {longest}.",
            fields={"Idempotency-Key": [f"at most {longest} characters"]},
        )
    current = Orchestration.objects.select_for_update().get(pk=orchestration.pk)
    if current.deleted_at is not None:
        raise OrchestrationNotActive(
            "The orchestration is deleted: it starts no new runs (its runs stay readable)."
        )
    if current.status != OrchestrationStatus.ACTIVE:
        raise OrchestrationNotActive(
            f"The orchestration is {current.status}; activate it before starting runs."
        )
    fingerprint = ""
    if idempotency_key:
        fingerprint = request_fingerprint(data, metadata, entry_node)
        existing = (
            Run.objects.filter(
                orchestration=current,
                idempotency_key=idempotency_key,
                idempotency_caller=caller,
                created_at__gte=timezone.now() - IDEMPOTENCY_WINDOW,
            )
            .order_by("-created_at")
            .first()
        )
        if existing is not None:
            if existing.idempotency_fingerprint != fingerprint:
                raise Conflict(
                    f"The Idempotency-Key '{idempotency_key}' was used for another request "
                    f"(run {existing.pk}) in the last 24 hours: send a new key for a new request."
                )
            return existing, False
    entry_step = trigger_entry(current, entry_node)
    run = create_run(
        current,
        data,
        trigger_kind=trigger_kind,
        trigger_ref=trigger_ref,
        requested_by=requested_by,
        metadata=metadata,
        idempotency_key=idempotency_key,
        idempotency_caller=caller if idempotency_key else "",
        idempotency_fingerprint=fingerprint,
        entry_step=entry_step,
    )
    return run, True


def request_fingerprint(data: Any, metadata: dict[str, Any] | None, entry_node: str) -> str:
    """What makes two requests under one Idempotency-Key the same request: the run they ask
    for (input, metadata, entry step), whatever the key order of their JSON."""
    canonical = json.dumps(
        {"input": data, "metadata": metadata or {}, "entry": entry_node},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def advance(run_id: Pk) -> Run:
    """Start a queued run, or look again at a running one (idempotent)."""

    def action(progress: Progress) -> None:
        if progress.run.status == RunStatus.QUEUED:
            if progress.run.cancel_requested:
                progress.advance()
            else:
                progress.begin()
        elif progress.run.status not in RUN_TERMINAL:
            progress.advance()

    return change(run_id, action)


def cancel(run: Run) -> Run:
    """Best effort: running steps finish, waiting and pending ones are cancelled, nothing new
    starts, and the run ends `cancelled` once no step is running."""
    children: list[UUID] = []

    def action(progress: Progress) -> None:
        current = progress.run
        if current.status in RUN_TERMINAL:
            raise Conflict(f"The run already ended ({current.status}).")
        current.cancel_requested = True
        cancel_pending(current.pk)
        for step in progress.steps.values():
            if step.status == StepStatus.WAITING:
                if step.child_run_id:
                    children.append(step.child_run_id)
                # An agent step waiting for its orchestration tool calls' child runs.
                children.extend(
                    pk
                    for pk in Run.objects.filter(tool_call_step=step).values_list("pk", flat=True)
                    if pk != step.child_run_id
                )
                step.save(update_fields=move_step(step, StepStatus.CANCELLED, progress.now))
        progress.advance()

    result = change(run.pk, action)
    for child_id in children:
        child = Run.objects.get(pk=child_id)
        if child.status not in RUN_TERMINAL:
            cancel(child)
    return result


@transaction.atomic
def replay(run: Run, *, from_step: str | None = None, requested_by: Actor = None) -> Run:
    """A new run with the same input on the current version.

    With `from_step`, every step that does not depend on it keeps its recorded output from the
    original run, and only that step and what follows it run again.

    A run that started at an entry step is replayed from the same entry: refused (409
    `conflict`) when the current version no longer has that step, and a `from_step` must be
    the entry or downstream of it (the steps before the entry never run in such a run).
    """
    orchestration = Orchestration.objects.select_for_update().get(pk=run.orchestration_id)
    # A replay starts a run like a fire does: not of a deleted (its runs stay readable), draft or
    # paused orchestration (API.md's 409 `orchestration_not_active`).
    if orchestration.deleted_at is not None:
        raise OrchestrationNotActive("The orchestration is deleted; its runs cannot be replayed.")
    if orchestration.status != OrchestrationStatus.ACTIVE:
        raise OrchestrationNotActive(
            f"The orchestration is {orchestration.status}; activate it before replaying its runs."
        )
    entry = run.entry_step
    if entry and not has_step(orchestration, entry):
        raise Conflict(
            f"The run started at step '{entry}', which version {orchestration.version} of the "
            "definition no longer has: a replay starts where the run started."
        )
    edges = []
    if from_step is not None:
        edges = [(e["source"], e["target"]) for e in orchestration.definition["edges"]]
        node_ids = {n["id"] for n in orchestration.definition["nodes"]}
        if from_step not in node_ids:
            raise InvalidRequest(
                f"The current version has no step '{from_step}'.",
                fields={"from_step": [f"no step '{from_step}' in version {orchestration.version}"]},
            )
        if entry and from_step != entry and from_step not in descendants(entry, edges):
            raise InvalidRequest(
                f"The run started at step '{entry}', and step '{from_step}' is not downstream "
                "of it: replay from the entry or a step after it.",
                fields={"from_step": [f"not '{entry}' or downstream of it"]},
            )
    new = create_run(
        orchestration,
        run.input,
        trigger_kind=TriggerKind.REPLAY,
        trigger_ref=run.pk,
        requested_by=requested_by,
        metadata=run.metadata,
        replays=run,
        entry_step=entry,
    )
    if from_step is None:
        return new
    new.replay_from_step = from_step
    new.save(update_fields=["replay_from_step"])
    rerun = {from_step} | descendants(from_step, edges)
    reused = []
    state = dict(new.shared_state)
    nodes = {n["id"]: n for n in orchestration.definition["nodes"]}
    for step in latest_attempts(run).values():
        if step.node_id in rerun or step.node_id not in nodes:
            continue
        if step.status not in (StepStatus.SUCCEEDED, StepStatus.SKIPPED):
            continue
        reused.append(reused_step(step, new))
        key = nodes[step.node_id].get("output_key")
        if key and step.status == StepStatus.SUCCEEDED:
            state[key] = step.output
    StepRun.objects.bulk_create(reused)
    new.shared_state = state
    new.save(update_fields=["shared_state"])
    return new
