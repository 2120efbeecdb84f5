"""One registry declares every node type: each entry has what the engine, the editor and the
validator need, and the lists the registry replaced are gone for good."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.definition import validate_definition
from orchestrator.definition.checks import Checker
from orchestrator.definition.errors import Problems
from orchestrator.definition.nodes import (
    KNOWN_TOOLS,
    NODE_TYPES,
    RUNS_ON,
    palette,
    types_running_on,
    waits_for_people,
)
from runs.engine.nodes import EXECUTORS, INLINE_EXECUTORS
from runs.engine.tools import SCHEMAS, TOOLS

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["orchestrator", "runs", "approvals", "gallery", "static/js", "templates", "config"]


def source_files():
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".js", ".html") and "migrations" not in path.parts:
                yield path


def normalized_keys(node_type: str, config: dict) -> set[str]:
    return set(NODE_TYPES[node_type].validate(dict(config), "config", Checker(Problems())))


def test_every_type_runs_somewhere_known():
    assert {spec.runs_on for spec in NODE_TYPES.values()} <= set(RUNS_ON)


def test_the_engine_has_an_executor_for_exactly_the_types_that_need_one():
    assert set(EXECUTORS) == types_running_on("worker")
    assert set(INLINE_EXECUTORS) == types_running_on("inline")


@pytest.mark.parametrize("node_type", list(NODE_TYPES))
def test_every_type_has_a_palette_entry_the_validator_understands(node_type):
    entry = next(e for e in palette() if e["type"] == node_type)
    assert entry["label"] and entry["icon"] and entry["description"]
    accepted = normalized_keys(node_type, entry["default_config"])
    assert set(entry["default_config"]) <= accepted
    assert entry["inspector"], "the inspector offers no field"
    for field in entry["inspector"]:
        assert field["key"] in accepted, field
        assert field["label"] and field["kind"]


def test_a_palette_entry_is_a_copy_so_editing_a_new_step_leaves_the_registry_alone():
    entry = next(e for e in palette() if e["type"] == "delay")
    entry["default_config"]["seconds"] = 1
    entry["inspector"][0]["label"] = "changed"
    assert NODE_TYPES["delay"].default_config["seconds"] == 60
    assert NODE_TYPES["delay"].inspector[0]["label"] == "Seconds"


def test_a_step_with_a_palette_default_config_passes_validation_where_nothing_is_left_to_pick():
    nodes = [
        {"id": f"s{i}", "type": entry["type"], "config": entry["default_config"]}
        for i, entry in enumerate(palette())
        if entry["type"] != "subflow"  # names an orchestration the person picks
    ]
    assert len(validate_definition({"nodes": nodes})["nodes"]) == len(nodes)


def test_only_the_types_that_ask_people_wait_for_them():
    assert types_running_on("people") == {"approval", "human_input"}
    assert waits_for_people("approval") and not waits_for_people("agent")
    assert not waits_for_people("no_such_type") and not waits_for_people(None)


def test_every_tool_an_agent_may_name_is_one_the_engine_can_run_and_describe():
    assert set(KNOWN_TOOLS) == set(TOOLS) == set(SCHEMAS)


@pytest.mark.parametrize("name", ["HUMAN_TYPES", "WAITS_FOR_PEOPLE", "WORKER_TYPES"])
def test_the_lists_of_node_types_the_registry_replaced_are_gone(name):
    users = [str(p.relative_to(ROOT)) for p in source_files() if name in p.read_text()]
    assert users == []


@pytest.mark.parametrize(
    "copied",
    [
        r"[a-z][a-z0-9_]{0,62}",  # the node-id pattern (checks.IDENTIFIER)
        "MODEL_PROVIDERS = (",  # the model providers (nodes.MODEL_PROVIDERS)
        "KNOWN_TOOLS = (",
        "BUILTIN_MODELS = ",
    ],
)
def test_each_rule_about_node_ids_models_and_tools_is_written_once(copied):
    homes = [str(p.relative_to(ROOT)) for p in source_files() if copied in p.read_text()]
    assert len(homes) == 1, homes


def test_the_editor_scripts_key_nothing_by_node_type():
    """Default configs, inspector fields and icons come from the registry, not from objects
    keyed by type name in the scripts."""
    for path in (ROOT / "static/js").glob("*.js"):
        text = path.read_text()
        for node_type in NODE_TYPES:
            key = re.search(rf"(^|[{{,])\s*\"?{node_type}\"?\s*:", text, re.M)
            assert key is None, (path.name, node_type)
