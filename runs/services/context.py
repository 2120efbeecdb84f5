"""The template context of a run: input, the latest outputs of its steps, shared state, run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from runs.engine import build_context
from runs.models import Run, StepRun


def latest_of(steps: Iterable[StepRun]) -> dict[str, StepRun]:
    """Each node's highest attempt, nodes in the order first met: what a node's step *is* once
    retries made several rows (the context, the run's steps, a replay, a comparison)."""
    latest: dict[str, StepRun] = {}
    for step in steps:
        kept = latest.get(step.node_id)
        if kept is None or step.attempt >= kept.attempt:
            latest[step.node_id] = step
    return latest


# What deciding a run's next steps and their template context never read of a step: an agent's
# recorded conversation and a step's rendered input, its largest columns. A chain's k-th step
# reads k rows under the run's lock; a deferred column is loaded if something asks for it.
UNREAD_BY_SCHEDULER = ("transcript", "input")


def latest_attempts(run: Run, *, skip: tuple[str, ...] = ()) -> dict[str, StepRun]:
    """Each node's latest attempt, without the columns `skip` names (a step saved again then
    writes only the columns it was read with)."""
    return latest_of(StepRun.objects.filter(run=run).defer(*skip).order_by("node_id", "attempt"))


def run_context(run: Run, steps: Mapping[str, StepRun]) -> dict[str, Any]:
    return build_context(
        run.input,
        {
            node_id: {"output": step.output, "status": step.status, "error": step.error}
            for node_id, step in steps.items()
        },
        run.shared_state,
        {
            "id": str(run.pk),
            "orchestration": str(run.orchestration_id),
            "version": run.version,
            "trigger": run.trigger_kind,
            "metadata": run.metadata,
        },
    )
