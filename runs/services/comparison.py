"""Two runs side by side, step by step: the answer to "what changed since the last good run?"."""

from __future__ import annotations

import difflib
import json
from decimal import Decimal
from typing import Any

from core.domain_errors import InvalidRequest
from runs.models import Run, StepRun
from runs.services.context import latest_of
from runs.services.graphs import graph_of


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _side(step: StepRun | None) -> dict[str, Any] | None:
    if step is None:
        return None
    return {
        "status": step.status,
        "attempt": step.attempt,
        "duration_ms": step.duration_ms,
        "tokens": {"input": step.tokens_input, "output": step.tokens_output},
        "cost_usd": _usd(step.cost_usd),
        "unpriced": step.unpriced,
    }


def _usd(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _delta(a: float | int | None, b: float | int | None) -> float | int | None:
    return None if a is None or b is None else b - a


def compare_runs(a: Run, b: Run) -> dict[str, Any]:
    if a.orchestration_id != b.orchestration_id:
        raise InvalidRequest("Both runs must belong to the same orchestration.")
    steps_a, steps_b = latest_of(a.step_runs.all()), latest_of(b.step_runs.all())
    order = list(graph_of(a).order) + [n for n in graph_of(b).order if n not in graph_of(a).order]
    rows, changed = [], []
    for node_id in order:
        one, two = steps_a.get(node_id), steps_b.get(node_id)
        output_a = one.output if one else None
        output_b = two.output if two else None
        output_changed = output_a != output_b
        row = {
            "step_id": node_id,
            "a": _side(one),
            "b": _side(two),
            "status_changed": (one.status if one else None) != (two.status if two else None),
            "input_changed": (one.input if one else None) != (two.input if two else None),
            "output_changed": output_changed,
            "output_diff": "".join(
                difflib.unified_diff(
                    _text(output_a).splitlines(keepends=True),
                    _text(output_b).splitlines(keepends=True),
                    fromfile=f"a/{node_id}",
                    tofile=f"b/{node_id}",
                )
            )
            if output_changed
            else "",
            "duration_delta_ms": _delta(
                one.duration_ms if one else None, two.duration_ms if two else None
            ),
            "tokens_delta": {
                "input": (two.tokens_input if two else 0) - (one.tokens_input if one else 0),
                "output": (two.tokens_output if two else 0) - (one.tokens_output if one else 0),
            },
            # Unknown when either side's cost is (an unpriced model), never a made-up figure.
            "cost_delta_usd": _delta(
                _usd(one.cost_usd) if one else 0.0, _usd(two.cost_usd) if two else 0.0
            ),
        }
        if row["status_changed"] or row["input_changed"] or output_changed:
            changed.append(node_id)
        rows.append(row)
    return {
        "a": {
            "id": str(a.pk),
            "version": a.version,
            "status": a.status,
            "duration_ms": a.duration_ms,
            "cost_usd": float(a.cost_usd),
            "unpriced": a.unpriced,
        },
        "b": {
            "id": str(b.pk),
            "version": b.version,
            "status": b.status,
            "duration_ms": b.duration_ms,
            "cost_usd": float(b.cost_usd),
            "unpriced": b.unpriced,
        },
        "version_changed": a.version != b.version,
        "output_changed": a.output != b.output,
        "duration_delta_ms": _delta(a.duration_ms, b.duration_ms),
        "cost_delta_usd": float(b.cost_usd - a.cost_usd),
        "tokens_delta": {
            "input": b.tokens_input - a.tokens_input,
            "output": b.tokens_output - a.tokens_output,
        },
        "steps_changed": changed,
        "steps": rows,
    }
