"""The template context of a run: input, the latest outputs of its steps, shared state, run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runs.engine import build_context
from runs.models import Run, StepRun


def latest_attempts(run: Run) -> dict[str, StepRun]:
    latest: dict[str, StepRun] = {}
    for step in StepRun.objects.filter(run=run).order_by("node_id", "attempt"):
        latest[step.node_id] = step
    return latest


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
