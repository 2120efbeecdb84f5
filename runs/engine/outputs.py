"""Pure helpers around step outputs: the template context, shared state, the run's output and
edge payload schemas. They live here so that nodes, services and tests build these the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.definition.jsonschemas import first_error, schema_problem


def build_context(
    input: Mapping[str, Any] | None,
    steps: Mapping[str, Mapping[str, Any]],
    state: Mapping[str, Any] | None,
    run: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The context templates see: `input`, `steps.<id>.{output,status,error}`, `state`, `run`.

    Steps are reduced to those three keys so a template cannot depend on storage details; a
    step without a key reads as None (not yet run).
    """
    return {
        "input": dict(input or {}),
        "steps": {
            step_id: {
                "output": step.get("output"),
                "status": step.get("status"),
                "error": step.get("error"),
            }
            for step_id, step in steps.items()
        },
        "state": dict(state or {}),
        "run": dict(run or {}),
    }


def apply_output_key(
    state: Mapping[str, Any], node: Mapping[str, Any], output: Any
) -> dict[str, Any]:
    """The shared state after `node` produced `output`: a new dict, the input left untouched.

    A new dict, so the caller can compare old and new state or retry a transaction safely.
    Without an `output_key` the state is returned as a copy, unchanged.
    """
    new_state = dict(state)
    key = node.get("output_key")
    if key:
        new_state[key] = output
    return new_state


def default_run_output(finished_order: list[str], outputs: Mapping[str, Any]) -> Any:
    """The output of the last node to finish that succeeded (API.md), or None.

    `finished_order` lists node ids in the order they finished; `outputs` holds the outputs of
    the steps that succeeded (failed, skipped and cancelled ones are absent).
    """
    for node_id in reversed(finished_order):
        if node_id in outputs:
            return outputs[node_id]
    return None


def _json_path(path: Any) -> str:
    """`$.a[0].b` from a jsonschema error's absolute path."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def check_payload_schema(schema: Mapping[str, Any] | None, value: Any) -> str | None:
    """Check an edge's `payload_schema` against its source's output.

    Returns None when it matches (or there is no schema), else one readable message naming
    where it fails, e.g. "payload does not match the edge's schema at $.n: 'x' is not of type
    'integer'". An invalid schema is reported the same way rather than raised, so a bad
    definition fails the step with a clear error instead of crashing the worker.
    """
    if schema is None:
        return None
    problem = schema_problem(schema, "$")
    if problem is not None:
        where, message = problem
        return f"the edge's payload schema is invalid at {where}: {message}"
    error = first_error(schema, value)
    if error is None:
        return None
    where = _json_path(error.absolute_path)
    return f"payload does not match the edge's schema at {where}: {error.message}"
