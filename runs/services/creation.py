"""Creating a run: its input checked against the definition, pinned to the current version,
queued for a worker. Apart from `lifecycle` so that starting a subflow's child run needs nothing
that moves a run on (`lifecycle` imports `progress`, which starts subflows)."""

from __future__ import annotations

from typing import Any

from core.domain_errors import Conflict, InvalidRequest, TriggerMismatch
from core.types import Actor, Pk
from orchestrator.definition import DefinitionError, validate_run_input
from orchestrator.models import Orchestration
from runs.models import Run
from runs.services import dispatch
from runs.services.transitions import queue_run


def check_input(orchestration: Orchestration, data: Any) -> dict[str, Any]:
    try:
        return validate_run_input(orchestration.definition.get("inputs", []), data)
    except DefinitionError as exc:
        fields = exc.errors_by_path()
        path, messages = next(iter(fields.items()))
        raise TriggerMismatch(
            f"The input does not match the declared inputs: {path}: {messages[0]}", fields=fields
        ) from None


def has_step(orchestration: Orchestration, node_id: str) -> bool:
    return any(node["id"] == node_id for node in orchestration.definition.get("nodes", []))


def trigger_entry(orchestration: Orchestration, node_id: str) -> str:
    """The firing trigger's entry node (its `node_id`), or "" (start at the graph's roots).

    The trigger's `node_id` was checked against the definition when it was set, but a later
    version may have dropped that step: firing is then refused (409 `conflict`) rather than
    started somewhere the trigger's owner did not choose. A schedule records the refusal on
    its firing and puts the trigger in the `error` state.
    """
    if not node_id:
        return ""
    if not has_step(orchestration, node_id):
        raise Conflict(
            f"This trigger starts runs at step '{node_id}', which version "
            f"{orchestration.version} of the definition no longer has: set the trigger's "
            "node_id to an existing step (or clear it), or restore the step."
        )
    return node_id


def first_input_name(orchestration: Orchestration) -> str | None:
    inputs = orchestration.definition.get("inputs", [])
    return inputs[0]["name"] if inputs else None


def input_with_message(
    orchestration: Orchestration, given: dict[str, Any] | None, message: str | None
) -> dict[str, Any]:
    """A fire body's input with its `message` shorthand filled in: the first declared input
    (`message` when none is declared). Given both ways with different values, the body is
    refused rather than one of them dropped without a word."""
    run_input = dict(given or {})
    if message is None:
        return run_input
    name = first_input_name(orchestration) or "message"
    if name in run_input and run_input[name] != message:
        raise InvalidRequest(
            f"message fills the input '{name}', which input also gives, with another value: "
            "send one of the two.",
            fields={"message": [f"fills input.{name}, which input gives otherwise"]},
        )
    run_input[name] = message
    return run_input


def create_run(
    orchestration: Orchestration,
    data: Any,
    *,
    trigger_kind: str,
    trigger_ref: Pk | None = None,
    requested_by: Actor = None,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str = "",
    idempotency_caller: str = "",
    idempotency_fingerprint: str = "",
    parent: Run | None = None,
    parent_step_id: str = "",
    depth: int = 0,
    replays: Run | None = None,
    entry_step: str = "",
) -> Run:
    """Create a queued run pinned to the current version; a worker starts it after commit.

    `entry_step` (a node of the current version, checked by the caller) starts the run there
    instead of at the graph's roots: what it does not feed is skipped.
    """
    run_input = check_input(orchestration, data)
    version = orchestration.versions.get(version=orchestration.version)
    user = requested_by if getattr(requested_by, "pk", None) else None
    queued = {"trigger": trigger_kind, "version": version.version}
    if entry_step:
        queued["entry_step"] = entry_step
    run = queue_run(
        queued,
        organization_id=orchestration.organization_id,
        orchestration=orchestration,
        orchestration_version=version,
        version=version.version,
        trigger_kind=trigger_kind,
        trigger_ref=trigger_ref,
        input=run_input,
        output_type=version.definition.get("output_type", "markdown"),
        metadata=metadata or {},
        requested_by=user,
        requested_by_name=requested_by.get_username() if requested_by is not None else "",
        idempotency_key=idempotency_key,
        idempotency_caller=idempotency_caller,
        idempotency_fingerprint=idempotency_fingerprint,
        credit_limit=orchestration.credit_limit,
        parent_run=parent,
        parent_step_id=parent_step_id,
        root_run_id=(parent.root_run_id or parent.pk) if parent is not None else None,
        depth=depth,
        replays_run=replays,
        entry_step=entry_step,
        steps_total=len(version.definition.get("nodes", [])),
    )
    dispatch.enqueue_advance(run.pk)
    return run
