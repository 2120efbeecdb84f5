"""The editor's markdown tab: a definition written as markdown compiles back to the same graph."""

from __future__ import annotations

import pytest

from orchestrator.definition import compile_markdown, validate_definition
from orchestrator.definition.markdown_export import to_markdown
from orchestrator.definition.nodes import NODE_TYPES

API_EXAMPLE = """# Market Research Report
Researches a topic and produces a report.

## Inputs
- topic (string, required): the topic to research
- depth (string, default: normal): shallow, normal or deep

## Agents
### researcher
- model: builtin/echo
- tools: http_get
You are a meticulous researcher.

## Steps
### research
- agent: researcher
- output_key: research_results
Research {{ input.topic }} in {{ input.depth }} depth.

### review
- type: approval
Check the research before the report is written.

### report
- type: transform
- after: research, review
{{ steps.research.output }}

## Output
- type: markdown
{{ steps.report.output }}
"""


def shape(definition: dict) -> dict:
    """What a reader of the graph cares about: no positions."""
    return {
        "inputs": definition["inputs"],
        "agents": definition["agents"],
        "nodes": [{k: v for k, v in n.items() if k != "position"} for n in definition["nodes"]],
        "edges": sorted((e["source"], e["target"], e["condition"]) for e in definition["edges"]),
        "output": definition["output"],
        "output_type": definition["output_type"],
    }


def roundtrip(definition: dict) -> tuple[dict, list[str]]:
    markdown, warnings = to_markdown("Flow", "About it.", definition)
    result = compile_markdown(markdown)
    assert result.valid, (markdown, result.errors)
    return result.definition, warnings


def test_the_api_example_survives_a_round_trip():
    original = compile_markdown(API_EXAMPLE).definition
    again, warnings = roundtrip(original)
    assert warnings == []
    assert shape(again) == shape(original)


def test_a_canvas_definition_with_parallel_roots_conditions_and_retries_round_trips():
    definition = validate_definition(
        {
            "inputs": [{"name": "n", "type": "integer", "required": False, "default": 3}],
            "nodes": [
                {"id": "a", "type": "transform", "name": "A", "config": {"output": {"v": 1}}},
                {
                    "id": "b",
                    "type": "transform",
                    "name": "B",
                    "config": {"output": "{{ input.n }}"},
                },
                {
                    "id": "gate",
                    "type": "approval",
                    "name": "Gate",
                    "config": {"prompt": "ok?", "approvers": ["ann", "bob"], "on_deny": "continue"},
                },
                {
                    "id": "call",
                    "type": "http",
                    "name": "Call",
                    "config": {"method": "POST", "url": "https://example.com/x", "body": {"k": 1}},
                    "retry": {"max_attempts": 3, "backoff_s": 2},
                    "on_error": "continue",
                    "timeout_s": 30,
                },
                {
                    "id": "write",
                    "type": "agent",
                    "name": "Write",
                    "config": {
                        "agent": {
                            "name": "w",
                            "model": "builtin/echo",
                            "temperature": 0.2,
                            "max_tokens": 800,
                        },
                        "prompt": "Hi",
                    },
                    "output_key": "draft",
                },
            ],
            "edges": [
                {"source": "a", "target": "gate"},
                {"source": "b", "target": "gate"},
                {"source": "gate", "target": "call", "condition": "output.approved"},
                {"source": "call", "target": "write"},
            ],
            "output": "{{ state.draft }}",
            "output_type": "text",
        }
    )
    again, warnings = roundtrip(definition)
    assert warnings == []
    expected = shape(definition)
    got = shape(again)
    assert got["edges"] == expected["edges"]
    assert got["output"] == expected["output"] and got["output_type"] == "text"
    by_id = {n["id"]: n for n in got["nodes"]}
    assert by_id["call"]["retry"]["max_attempts"] == 3 and by_id["call"]["on_error"] == "continue"
    assert by_id["call"]["config"]["body"] == {"k": 1}
    assert by_id["gate"]["config"]["approvers"] == ["ann", "bob"]
    assert by_id["a"]["config"]["output"] == {"v": 1}
    assert by_id["write"]["config"]["agent"] == "w"
    assert again["agents"] == [
        {
            **again["agents"][0],
            "name": "w",
            "model": "builtin/echo",
            "temperature": 0.2,
            "max_tokens": 800,
        }
    ]
    assert again["inputs"][0]["default"] == 3


def test_what_markdown_cannot_say_is_reported_not_silently_dropped():
    definition = validate_definition(
        {
            "nodes": [
                {"id": "a", "type": "transform", "config": {"output": "x"}},
                {"id": "b", "type": "transform", "config": {"output": "y"}},
                {
                    "id": "c",
                    "type": "http",
                    "config": {"url": "https://example.com", "headers": {"X-A": "1"}},
                },
            ],
            "edges": [
                {"source": "a", "target": "c", "condition": "true"},
                {"source": "b", "target": "c", "condition": "false"},
            ],
        }
    )
    _, warnings = to_markdown("Flow", "", definition)
    assert any("different conditions" in w for w in warnings)
    assert any("'headers'" in w for w in warnings)


SCORE = {
    "type": "object",
    "properties": {"score": {"type": "integer", "minimum": 0}},
    "required": ["score"],
}


def test_output_schemas_of_agents_and_steps_round_trip_and_a_prompts_own_json_stays_text():
    definition = validate_definition(
        {
            "agents": [
                {
                    "name": "judge",
                    "model": "builtin/echo",
                    "output_schema": {"type": "object"},
                    "system_prompt": 'Answer like this:\n\n```json\n{"score": 1}\n```',
                }
            ],
            "nodes": [
                {
                    "id": "rate",
                    "type": "agent",
                    "config": {
                        "agent": "judge",
                        "prompt": "Rate it.\n\n```json\n[1, 2]\n```",
                        "output_schema": SCORE,
                    },
                },
                {"id": "plain", "type": "agent", "config": {"agent": "judge", "prompt": "Hi"}},
            ],
            "edges": [{"source": "rate", "target": "plain"}],
        }
    )
    markdown, warnings = to_markdown("Flow", "", definition)
    assert warnings == []
    assert markdown.count("- output_schema:") == 2
    again, _ = roundtrip(definition)
    assert shape(again) == shape(definition)
    assert again["nodes"][0]["config"]["output_schema"] == SCORE
    assert again["nodes"][1]["config"]["output_schema"] is None


@pytest.mark.parametrize(
    "spec",
    [spec for spec in NODE_TYPES.values() if spec.body_key is not None],
    ids=lambda spec: spec.name,
)
def test_each_node_types_body_key_is_written_as_the_body_and_read_back(spec):
    body = {"topic": "{{ input.topic }}"} if spec.body_reads == "json" else "One\n\nTwo {{ input }}"
    # What the palette starts a step with, made valid: a subflow names its orchestration.
    config = {**spec.default_config, spec.body_key: body}
    if spec.name == "subflow":
        config["orchestration"] = "other"
    definition = validate_definition(
        {"nodes": [{"id": "only", "type": spec.name, "config": config}], "edges": []}
    )
    markdown, _ = to_markdown("Flow", "About it.", definition)
    again = compile_markdown(markdown)

    assert f"- {spec.body_key}:" not in markdown  # the body, not a config line
    assert again.valid, (markdown, again.errors)
    assert again.definition["nodes"][0]["config"][spec.body_key] == body


def test_an_agents_tool_objects_are_reported_not_written():
    definition = validate_definition(
        {
            "agents": [
                {
                    "name": "w",
                    "model": "builtin/echo",
                    "tools": [{"tool": "http_get", "approval": {"approvers": ["ann"]}}],
                }
            ],
            "nodes": [{"id": "write", "type": "agent", "config": {"agent": "w", "prompt": "x"}}],
            "edges": [],
        }
    )
    markdown, warnings = to_markdown("Flow", "", definition)
    assert warnings == ["agent 'w': tool objects (MCP, orchestration, approval) not written"]
    assert "- tools:" not in markdown
