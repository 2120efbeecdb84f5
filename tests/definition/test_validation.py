"""What a valid definition is, and how every problem is reported with its JSON path."""

from __future__ import annotations

import copy

import pytest

from orchestrator.definition import DefinitionError, validate_definition, validate_run_input

BASE = {
    "inputs": [{"name": "topic", "type": "string", "required": True}],
    "nodes": [
        {
            "id": "research",
            "type": "agent",
            "config": {"agent": {"model": "builtin/echo"}, "prompt": "About {{ input.topic }}"},
        },
        {"id": "report", "type": "transform", "config": {"output": "{{ steps.research.output }}"}},
    ],
    "edges": [{"source": "research", "target": "report"}],
}


def problems(data) -> dict[str, list[str]]:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(data)
    return caught.value.errors_by_path()


def with_changes(change) -> dict:
    data = copy.deepcopy(BASE)
    change(data)
    return data


def test_defaults_are_filled_in():
    result = validate_definition(BASE)
    node = result["nodes"][0]
    assert node["name"] == "research"
    assert node["retry"] == {"max_attempts": 1, "backoff_s": 1.0, "backoff_factor": 2.0}
    assert (node["timeout_s"], node["on_error"], node["output_key"]) == (300, "fail", None)
    assert node["position"] == {"x": 0, "y": 0}
    assert result["edges"][0]["id"] == "e1"
    assert result["output_type"] == "markdown"
    assert result["inputs"][0]["default"] is None
    assert node["config"]["response_format"] == "text"


def test_every_problem_is_reported_at_once_with_its_path():
    def change(data):
        data["nodes"][1]["type"] = "teleport"
        data["nodes"][0]["config"]["prompt"] = ""
        data["edges"][0]["target"] = "nowhere"
        data["inputs"][0]["type"] = "date"

    found = problems(with_changes(change))
    assert set(found) >= {
        "nodes[1].type",
        "nodes[0].config.prompt",
        "edges[0].target",
        "inputs[0].type",
    }
    assert "known: agent, transform" in found["nodes[1].type"][0]


def test_a_cycle_is_reported_with_its_path():
    found = problems(
        with_changes(lambda d: d["edges"].append({"source": "report", "target": "research"}))
    )
    assert found["edges"] == ["the graph has a cycle: research -> report -> research"]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d["nodes"][0].update(colour="red"), "nodes[0].colour"),
        (lambda d: d["nodes"][0]["config"].update(colour="red"), "nodes[0].config.colour"),
        (lambda d: d["edges"][0].update(colour="red"), "edges[0].colour"),
        (
            lambda d: d["nodes"][0].update(retry={"max_attempts": True}),
            "nodes[0].retry.max_attempts",
        ),
        (lambda d: d["nodes"][0].update(timeout_s="soon"), "nodes[0].timeout_s"),
        (lambda d: d["nodes"][0].update(id="Bad Id"), "nodes[0].id"),
        (lambda d: d["nodes"].append(copy.deepcopy(d["nodes"][0])), "nodes[2].id"),
        (lambda d: d["edges"].append({"source": "research", "target": "report"}), "edges[1]"),
        (lambda d: d["edges"].append({"source": "report", "target": "report"}), "edges[1]"),
        (lambda d: d["edges"][0].update(condition="output ==="), "edges[0].condition"),
        (
            lambda d: d["edges"][0].update(payload_schema={"type": 5}),
            "edges[0].payload_schema.type",
        ),
        (
            lambda d: d["nodes"][1]["config"].update(output={"a": ["{{ broken"]}),
            "nodes[1].config.output",
        ),
        (lambda d: d["inputs"][0].update(type="integer", default="x"), "inputs[0].default"),
        (lambda d: d.update(output="{% if %}"), "output"),
        (lambda d: d.update(output_type="pdf"), "output_type"),
        (lambda d: d.update(nodes=[]), "nodes"),
    ],
)
def test_invalid_parts_are_reported_at_their_path(change, path):
    assert path in problems(with_changes(change))


def test_a_definition_must_be_an_object():
    assert problems([1, 2]) == {"$": ["the definition must be an object, not a list"]}


@pytest.mark.parametrize(
    ("node", "path"),
    [
        ({"id": "h", "type": "http", "config": {}}, "nodes[0].config.url"),
        (
            {"id": "h", "type": "http", "config": {"url": "x", "method": "TRACE"}},
            "nodes[0].config.method",
        ),
        ({"id": "s", "type": "subflow", "config": {}}, "nodes[0].config.orchestration"),
        ({"id": "d", "type": "delay", "config": {"seconds": -1}}, "nodes[0].config.seconds"),
        ({"id": "t", "type": "transform", "config": {}}, "nodes[0].config.output"),
        (
            {"id": "a", "type": "approval", "config": {"escalate_to": ["x"]}},
            "nodes[0].config.escalate_to",
        ),
        (
            {
                "id": "f",
                "type": "human_input",
                "config": {"fields": [{"name": "c", "type": "select"}]},
            },
            "nodes[0].config.fields[0].options",
        ),
        (
            {"id": "a", "type": "agent", "config": {"agent": {"model": "gpt4/x"}, "prompt": "x"}},
            "nodes[0].config.agent.model",
        ),
        (
            {
                "id": "a",
                "type": "agent",
                "config": {"agent": {"model": "builtin/echo", "tools": ["rm"]}, "prompt": "x"},
            },
            "nodes[0].config.agent.tools[0]",
        ),
        *(
            (
                {
                    "id": "a",
                    "type": "agent",
                    "config": {
                        "agent": {"model": "builtin/echo", "max_tokens": bad},
                        "prompt": "x",
                    },
                },
                "nodes[0].config.agent.max_tokens",
            )
            for bad in (0, -1, "x", 1.5, True, 200_001)
        ),
    ],
)
def test_each_node_type_checks_its_config(node, path):
    assert path in problems({"nodes": [node]})


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"type": "approval", "config": {"timeout_s": 1e12}}, "must be at most 31536000"),
        ({"type": "approval", "config": {"timeout_s": 0}}, "must be greater than 0"),
        ({"type": "delay", "config": {"seconds": 1e9}}, "must be at most 2592000"),
        ({"type": "delay", "config": {"seconds": -0.5}}, "must be at least 0"),
        (
            {"type": "approval", "config": {"timeout_s": 60, "escalate_after_s": 60}},
            "must be less than timeout_s (60): the approval would expire before it escalates",
        ),
        (
            {"type": "approval", "config": {"escalate_after_s": 8 * 86400}},
            "must be less than timeout_s (604800): the approval would expire before it escalates",
        ),
    ],
)
def test_a_bound_is_written_as_people_write_numbers(node, message):
    node = {"id": "n", **node}
    [written] = [text for texts in problems({"nodes": [node]}).values() for text in texts]
    assert written == message


def test_an_inline_agents_max_tokens_is_kept_and_absent_means_none():
    def change(data):
        data["nodes"][0]["config"]["agent"]["max_tokens"] = 800

    assert (
        validate_definition(with_changes(change))["nodes"][0]["config"]["agent"]["max_tokens"]
        == 800
    )
    assert validate_definition(BASE)["nodes"][0]["config"]["agent"]["max_tokens"] is None


def test_select_options_given_as_text_become_a_list():
    result = validate_definition(
        {
            "nodes": [
                {
                    "id": "f",
                    "type": "human_input",
                    "config": {"fields": [{"name": "choice", "type": "select", "options": "a, b"}]},
                }
            ]
        }
    )
    field = result["nodes"][0]["config"]["fields"][0]
    assert field["options"] == ["a", "b"]
    assert field["label"] == "Choice"


def test_run_input_gets_defaults_and_is_type_checked():
    spec = [
        {"name": "n", "type": "integer", "required": True},
        {"name": "ratio", "type": "number", "default": 0.5},
        {"name": "tag", "type": "string"},
    ]
    assert validate_run_input(spec, {"n": 3}) == {"n": 3, "ratio": 0.5, "tag": None}
    assert validate_run_input(spec, {"n": 3, "ratio": 2}) == {"n": 3, "ratio": 2, "tag": None}
    for bad, path in [
        ({"n": 1.5}, "input.n"),
        ({"n": True}, "input.n"),
        ({}, "input.n"),
        ({"n": 1, "extra": 1}, "input.extra"),
    ]:
        with pytest.raises(DefinitionError) as caught:
            validate_run_input(spec, bad)
        assert path in caught.value.errors_by_path()


def test_with_no_declared_inputs_any_object_is_accepted():
    assert validate_run_input([], {"anything": [1]}) == {"anything": [1]}
    with pytest.raises(DefinitionError):
        validate_run_input([], "text")


def nested(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_config_nested_too_deeply_is_reported_at_its_node_not_a_recursion_error():
    # 500 levels: below json.loads' limit, far past what the recursive walks survive.
    found = problems(with_changes(lambda d: d["nodes"][1]["config"].update(output=nested(500))))
    assert found == {"nodes[1].config": ["nests more than 64 levels deep"]}


def test_config_nested_within_the_limit_is_accepted():
    data = with_changes(lambda d: d["nodes"][1]["config"].update(output=nested(60)))
    assert validate_definition(data)["nodes"][1]["config"]["output"] == nested(60)


def test_a_run_input_nested_too_deeply_is_refused_with_its_name():
    with pytest.raises(DefinitionError) as caught:
        validate_run_input([], {"payload": nested(500)})
    assert caught.value.errors_by_path() == {"input.payload": ["nests more than 64 levels deep"]}
