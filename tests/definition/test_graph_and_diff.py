from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.definition import DefinitionError, diff_definitions, validate_definition
from orchestrator.definition.graph import descendants, find_cycle, topological_order


def test_topological_order_keeps_definition_order_for_ties():
    assert topological_order(["c", "a", "b"], [("a", "b")]) == ["c", "a", "b"]
    assert topological_order(["b", "a"], [("a", "b")]) == ["a", "b"]


def test_cycles_and_descendants():
    assert find_cycle(["a", "b", "c"], [("a", "b"), ("b", "c")]) is None
    assert find_cycle(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "b")]) == ["b", "c", "b"]
    assert descendants("a", [("a", "b"), ("b", "c"), ("x", "y")]) == {"b", "c"}


@st.composite
def dags(draw):
    size = draw(st.integers(1, 25))
    pairs = draw(
        st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, size - 1)), max_size=60)
    )
    edges = sorted({(min(a, b), max(a, b)) for a, b in pairs if a != b})
    return size, edges


@settings(max_examples=200, deadline=None)
@given(dags(), st.booleans())
def test_random_dags_validate_and_back_edges_make_cycles(dag, add_back_edge):
    size, edges = dag
    definition = {
        "nodes": [
            {"id": f"n{i}", "type": "transform", "config": {"output": i}} for i in range(size)
        ],
        "edges": [{"source": f"n{a}", "target": f"n{b}"} for a, b in edges],
    }
    if add_back_edge and edges:
        a, b = edges[0]
        definition["edges"].append({"source": f"n{b}", "target": f"n{a}"})
        try:
            validate_definition(definition)
        except DefinitionError as exc:
            assert "cycle" in exc.errors_by_path()["edges"][0]
        else:
            raise AssertionError("a back edge must make a cycle")
        return
    result = validate_definition(definition)
    order = topological_order(
        [n["id"] for n in result["nodes"]], [(e["source"], e["target"]) for e in result["edges"]]
    )
    position = {node: index for index, node in enumerate(order)}
    assert len(order) == size
    assert all(position[f"n{a}"] < position[f"n{b}"] for a, b in edges)


def test_diff_matches_edges_by_their_ends_and_inputs_by_name():
    before = validate_definition(
        {
            "inputs": [{"name": "a", "type": "string"}],
            "nodes": [
                {"id": "x", "type": "transform", "config": {"output": 1}},
                {"id": "y", "type": "transform", "config": {"output": 2}},
            ],
            "edges": [{"id": "first", "source": "x", "target": "y"}],
        }
    )
    after = validate_definition(
        {
            "inputs": [{"name": "a", "type": "integer"}, {"name": "b", "type": "string"}],
            "nodes": [
                {"id": "x", "type": "transform", "config": {"output": 10}},
                {"id": "y", "type": "transform", "config": {"output": 2}},
                {"id": "z", "type": "transform", "config": {"output": 3}},
            ],
            "edges": [
                {"id": "renamed", "source": "x", "target": "y"},
                {"source": "y", "target": "z"},
            ],
            "output": "{{ steps.z.output }}",
        }
    )
    diff = diff_definitions(before, after)
    assert diff["nodes"]["added"] == ["z"]
    assert [c["id"] for c in diff["nodes"]["changed"]] == ["x"]
    assert diff["nodes"]["changed"][0]["fields"] == ["config"]
    assert [(e["source"], e["target"]) for e in diff["edges"]["added"]] == [("y", "z")]
    assert diff["edges"]["changed"] == []
    assert diff["inputs"]["added"] == ["b"]
    assert [c["name"] for c in diff["inputs"]["changed"]] == ["a"]
    assert diff["output_changed"] is True
