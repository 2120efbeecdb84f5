"""Validation of whole definitions and of run inputs, returning normalized plain data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.definition.checks import (
    MAX_DEPTH,
    MISSING,
    Checker,
    is_integer,
    is_number,
    json_path,
    too_deep,
    type_name,
    unstorable_path,
)
from orchestrator.definition.errors import Problems
from orchestrator.definition.expressions import expression_syntax_error, template_syntax_error
from orchestrator.definition.graph import find_cycle
from orchestrator.definition.jsonschemas import schema_problem
from orchestrator.definition.nodes import NODE_TYPES, validate_agent_object, validate_config

TOP_LEVEL_KEYS = ("inputs", "agents", "nodes", "edges", "output", "output_type")
NODE_KEYS = (
    "id",
    "type",
    "name",
    "config",
    "retry",
    "timeout_s",
    "on_error",
    "output_key",
    "position",
    "description",
)
EDGE_KEYS = ("id", "source", "target", "condition", "description", "payload_schema")
INPUT_KEYS = ("name", "type", "required", "default", "description")
INPUT_TYPES = ("string", "number", "integer", "boolean", "object", "array")
OUTPUT_TYPES = ("markdown", "text", "json")
MAX_NODES = 2000
DAY_S = 86400


def fits_type(value: Any, kind: str) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "string": lambda v: isinstance(v, str),
        "number": is_number,
        "integer": is_integer,
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
    }
    return checks[kind](value)


def _list(check: Checker, data: dict[str, Any], key: str, *, required: bool = False) -> list[Any]:
    value = data.get(key, MISSING)
    if value is MISSING or value is None:
        if required:
            check.fail(key, "is required")
        return []
    if not isinstance(value, list):
        check.fail(key, f"must be a list, not {type_name(value)}")
        return []
    return value


def _inputs(check: Checker, raw: list[Any]) -> list[dict[str, Any]]:
    inputs, seen = [], set()
    for index, item in enumerate(raw):
        path = f"inputs[{index}]"
        if not isinstance(item, dict):
            check.fail(path, f"must be an object, not {type_name(item)}")
            continue
        check.unknown_keys(item, INPUT_KEYS, path)
        name = check.identifier(item.get("name", MISSING), f"{path}.name")
        if name in seen:
            check.fail(f"{path}.name", f"duplicate input '{name}'")
        seen.add(name)
        kind = check.choice(
            item.get("type", MISSING), f"{path}.type", INPUT_TYPES, default="string"
        )
        default = item.get("default")
        if default is not None and not fits_type(default, kind):
            check.fail(f"{path}.default", f"must be of type {kind}, not {type_name(default)}")
        inputs.append(
            {
                "name": name,
                "type": kind,
                "required": check.boolean(item.get("required"), f"{path}.required", default=False),
                "default": default,
                "description": check.string(
                    item.get("description", MISSING), f"{path}.description", default=""
                ),
            }
        )
    return inputs


def _agents(check: Checker, raw: list[Any]) -> list[dict[str, Any]]:
    agents, seen = [], set()
    for index, item in enumerate(raw):
        path = f"agents[{index}]"
        if not isinstance(item, dict):
            check.fail(path, f"must be an object, not {type_name(item)}")
            continue
        agent = validate_agent_object(item, path, check)
        name = agent.get("name")
        if not name:
            check.fail(f"{path}.name", "is required")
        elif name in seen:
            check.fail(f"{path}.name", f"duplicate agent '{name}'")
        seen.add(name)
        agents.append(agent)
    return agents


def _node(check: Checker, item: Any, index: int) -> dict[str, Any] | None:
    path = f"nodes[{index}]"
    if not isinstance(item, dict):
        check.fail(path, f"must be an object, not {type_name(item)}")
        return None
    check.unknown_keys(item, NODE_KEYS, path)
    node_id = check.identifier(item.get("id", MISSING), f"{path}.id")
    node_type = item.get("type", MISSING)
    if node_type not in NODE_TYPES:
        known = ", ".join(NODE_TYPES)
        if node_type is MISSING:
            check.fail(f"{path}.type", f"is required: one of {known}")
        else:
            check.fail(f"{path}.type", f"unknown node type {str(node_type)[:60]!r}; known: {known}")
        config: dict[str, Any] = {}
    else:
        config = validate_config(node_type, item.get("config", {}), f"{path}.config", check)

    retry = check.obj(item.get("retry", MISSING), f"{path}.retry", default={})
    check.unknown_keys(retry, ("max_attempts", "backoff_s", "backoff_factor"), f"{path}.retry")
    position = check.obj(item.get("position", MISSING), f"{path}.position", default={})
    output_key = item.get("output_key")
    if output_key is not None:
        output_key = check.identifier(output_key, f"{path}.output_key")
    return {
        "id": node_id,
        "type": node_type if node_type in NODE_TYPES else "",
        "name": check.string(
            item.get("name", MISSING), f"{path}.name", default=node_id, max_length=200
        )
        or node_id,
        "description": check.string(
            item.get("description", MISSING), f"{path}.description", default=""
        ),
        "config": config,
        "retry": {
            "max_attempts": check.number(
                retry.get("max_attempts", MISSING),
                f"{path}.retry.max_attempts",
                default=1,
                minimum=1,
                maximum=20,
                integer=True,
            ),
            "backoff_s": check.number(
                retry.get("backoff_s", MISSING),
                f"{path}.retry.backoff_s",
                default=1.0,
                minimum=0,
                maximum=DAY_S,
            ),
            "backoff_factor": check.number(
                retry.get("backoff_factor", MISSING),
                f"{path}.retry.backoff_factor",
                default=2.0,
                minimum=1,
                maximum=10,
            ),
        },
        "timeout_s": check.number(
            item.get("timeout_s", MISSING),
            f"{path}.timeout_s",
            default=300,
            minimum=0,
            exclusive_minimum=True,
            maximum=DAY_S,
            nullable=True,
        ),
        "on_error": check.choice(
            item.get("on_error", MISSING), f"{path}.on_error", ("fail", "continue"), default="fail"
        ),
        "output_key": output_key,
        "position": {
            axis: check.number(position.get(axis, MISSING), f"{path}.position.{axis}", default=0)
            for axis in ("x", "y")
        },
    }


def _edges(check: Checker, raw: list[Any], node_ids: set[str]) -> list[dict[str, Any]]:
    edges, ids, pairs = [], set(), set()
    given_ids = {item.get("id") for item in raw if isinstance(item, dict)}
    counter = 0
    for index, item in enumerate(raw):
        path = f"edges[{index}]"
        if not isinstance(item, dict):
            check.fail(path, f"must be an object, not {type_name(item)}")
            continue
        check.unknown_keys(item, EDGE_KEYS, path)
        edge_id = item.get("id")
        if edge_id is None:
            counter += 1
            while f"e{counter}" in given_ids or f"e{counter}" in ids:
                counter += 1
            edge_id = f"e{counter}"
        edge_id = check.string(edge_id, f"{path}.id", allow_empty=False, max_length=100)
        if edge_id in ids:
            check.fail(f"{path}.id", f"duplicate edge id '{edge_id}'")
        ids.add(edge_id)
        source = check.string(item.get("source", MISSING), f"{path}.source")
        target = check.string(item.get("target", MISSING), f"{path}.target")
        for key, value in (("source", source), ("target", target)):
            if value and value not in node_ids:
                check.fail(f"{path}.{key}", f"no node '{value[:80]}'")
        if source and source == target:
            check.fail(path, f"an edge cannot connect '{source}' to itself")
        if (source, target) in pairs:
            check.fail(path, f"duplicate edge from '{source}' to '{target}'")
        pairs.add((source, target))
        condition = check.string(item.get("condition", MISSING), f"{path}.condition", default=None)
        if condition is not None:
            problem = expression_syntax_error(condition)
            if problem:
                check.fail(f"{path}.condition", problem)
        schema = item.get("payload_schema")
        if schema is not None:
            if not isinstance(schema, dict | bool):
                check.fail(f"{path}.payload_schema", "must be a JSON Schema object")
            else:
                schema_error = schema_problem(schema, f"{path}.payload_schema")
                if schema_error is not None:
                    where, message = schema_error
                    check.fail(where, f"not a valid JSON Schema: {message}")
        edges.append(
            {
                "id": edge_id,
                "source": source,
                "target": target,
                "condition": condition,
                "description": check.string(
                    item.get("description", MISSING), f"{path}.description", default=""
                ),
                "payload_schema": schema,
            }
        )
    return edges


def validate_definition(data: Any) -> dict[str, Any]:
    """The normalized definition (defaults filled in), or DefinitionError with every problem."""
    problems = Problems()
    check = Checker(problems)
    if not isinstance(data, dict):
        problems.add("$", f"the definition must be an object, not {type_name(data)}")
        problems.raise_if_any()
    deep = too_deep(data)
    if deep is not None:
        # Named at its node's config (or edge, input...): the full path would be 64 levels long.
        problems.add(json_path(deep[:3]), f"nests more than {MAX_DEPTH} levels deep")
        problems.raise_if_any()
    check.unknown_keys(data, TOP_LEVEL_KEYS, "")

    inputs = _inputs(check, _list(check, data, "inputs"))
    agents = _agents(check, _list(check, data, "agents"))
    raw_nodes = _list(check, data, "nodes", required=True)
    if "nodes" in data and isinstance(data["nodes"], list) and not raw_nodes:
        check.fail("nodes", "needs at least one node")
    if len(raw_nodes) > MAX_NODES:
        check.fail("nodes", f"at most {MAX_NODES} nodes")
        raw_nodes = raw_nodes[:MAX_NODES]
    nodes = []
    seen: set[str] = set()
    for index, item in enumerate(raw_nodes):
        node = _node(check, item, index)
        if node is None:
            continue
        if node["id"] and node["id"] in seen:
            check.fail(f"nodes[{index}].id", f"duplicate node id '{node['id']}'")
        seen.add(node["id"])
        nodes.append(node)
    edges = _edges(check, _list(check, data, "edges"), seen)

    order = [node["id"] for node in nodes]
    cycle = find_cycle(order, [(e["source"], e["target"]) for e in edges])
    if cycle:
        check.fail("edges", "the graph has a cycle: " + " -> ".join(cycle))

    output = check.string(data.get("output", MISSING), "output", default=None)
    if output:
        problem = template_syntax_error(output)
        if problem:
            check.fail("output", problem)
    output_type = check.choice(
        data.get("output_type", MISSING), "output_type", OUTPUT_TYPES, default="markdown"
    )
    problems.raise_if_any()
    return {
        "inputs": inputs,
        "agents": agents,
        "nodes": nodes,
        "edges": edges,
        "output": output,
        "output_type": output_type,
    }


def validate_run_input(
    inputs_spec: list[dict[str, Any]], data: Any, *, partial: bool = False
) -> dict[str, Any]:
    """The run input with defaults filled in, checked against the declared inputs.

    With no declared inputs any object is accepted; with some, unknown keys are refused so a
    misspelt input name does not silently fall back to a default. `partial`: a part that
    something else completes later (a webhook trigger's fixed input, under each payload), so a
    required input may be missing from it.
    """
    problems = Problems()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.add("input", f"must be an object, not {type_name(data)}")
        problems.raise_if_any()
    deep = too_deep(data)
    if deep is not None:
        problems.add(json_path(deep[:1], "input"), f"nests more than {MAX_DEPTH} levels deep")
        problems.raise_if_any()
    # Every run's input passes here, whatever brought it (the API, a webhook, an MCP call, a
    # trigger, a parent run): text no column can store is refused before it is stored.
    unstorable = unstorable_path(data, "input")
    if unstorable is not None:
        problems.add(*unstorable)
        problems.raise_if_any()
    if not inputs_spec:
        return dict(data)
    declared = {spec["name"]: spec for spec in inputs_spec}
    for key in data:
        if key not in declared:
            problems.add(f"input.{key}", f"unknown input; declared: {', '.join(declared)}")
    result = {}
    for name, spec in declared.items():
        if name in data and data[name] is not None:
            value = data[name]
            if not fits_type(value, spec["type"]):
                problems.add(
                    f"input.{name}", f"must be of type {spec['type']}, not {type_name(value)}"
                )
            result[name] = value
        elif spec.get("default") is not None:
            result[name] = spec["default"]
        elif spec.get("required") and not partial:
            problems.add(f"input.{name}", "is required")
        else:
            result[name] = None
    problems.raise_if_any()
    return result


def inputs_json_schema(inputs_spec: list[dict[str, Any]]) -> dict[str, Any]:
    """The declared inputs as the JSON Schema of an object that `validate_run_input` accepts:
    what a caller that only reads schemas (an MCP client, a model calling a tool) is shown."""
    if not inputs_spec:
        return {"type": "object", "additionalProperties": True}
    properties, required = {}, []
    for spec in inputs_spec:
        prop: dict[str, Any] = {"type": spec["type"]}
        if spec.get("description"):
            prop["description"] = spec["description"]
        if spec.get("default") is not None:
            prop["default"] = spec["default"]
        elif spec.get("required"):
            required.append(spec["name"])
        properties[spec["name"]] = prop
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema
