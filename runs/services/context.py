"""The template context of a run: input, the latest outputs of its steps, shared state, run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import connection
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL

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
# recorded conversation and a step's rendered input, its largest columns (a deferred column is
# loaded if something asks for it).
UNREAD_BY_SCHEDULER = ("transcript", "input")

# On PostgreSQL, which version of its row a step instance holds: the row's xmin (the transaction
# that wrote it) and ctid (where that version lies). Every UPDATE writes a new version elsewhere,
# so an instance whose pair the table still holds is what a new read would give; within one
# transaction the ctid tells versions apart, across transactions the xmin.
ROW_VERSION = "row_version"
_VERSION_SQL = "xmin::text || '/' || ctid::text"
_CHANGED_SQL = (
    '("runs_steprun"."id", ' + _VERSION_SQL + ") NOT IN "
    "(SELECT * FROM unnest(%s::uuid[], %s::text[]))"
)


def latest_attempts(
    run: Run,
    *,
    skip: tuple[str, ...] = (),
    reuse: Mapping[str, StepRun] | None = None,
    changed: Iterable[str] | None = None,
) -> dict[str, StepRun]:
    """Each node's latest attempt, without the columns `skip` names (a step saved again then
    writes only the columns it was read with).

    `reuse`: steps read before, by an earlier transaction of the same task. On PostgreSQL those
    whose rows are unchanged are kept and only the other rows are read, so a record in a long
    chain or a wide fan-out reads the few rows that moved, not every step of the run. Elsewhere
    they are kept only when the caller names the nodes that can have changed since (`changed`:
    the template context of a step handed on by the last record, which saw all of them)."""
    rows = StepRun.objects.filter(run=run).defer(*skip)
    if connection.vendor != "postgresql":
        if reuse is None or changed is None:
            return latest_of(rows.order_by("node_id", "attempt"))
        read = list(rows.filter(node_id__in=list(changed)))
        moved = {step.node_id for step in read}
        kept = [step for step in reuse.values() if step.node_id not in moved]
        return latest_of(sorted([*kept, *read], key=lambda step: (step.node_id, step.attempt)))
    rows = rows.annotate(**{ROW_VERSION: RawSQL(_VERSION_SQL, ())})
    kept = [step for step in (reuse or {}).values() if getattr(step, ROW_VERSION, None)]
    if kept:
        versions = ([str(step.pk) for step in kept], [getattr(step, ROW_VERSION) for step in kept])
        rows = rows.filter(RawSQL(_CHANGED_SQL, versions, output_field=BooleanField()))
    read = list(rows)
    fresh = {step.pk for step in read}
    steps = [step for step in kept if step.pk not in fresh] + read
    return latest_of(sorted(steps, key=lambda step: (step.node_id, step.attempt)))


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
