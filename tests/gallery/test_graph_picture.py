"""The layered layout of the gallery's graph picture (pure Python, no database)."""

from __future__ import annotations

from gallery.graph_picture import MAX_NODES, NODE_H, NODE_W, depths, picture


def node(node_id: str, **extra) -> dict:
    return {"id": node_id, "type": "transform", "name": node_id.title(), **extra}


def test_depth_is_the_longest_path_from_a_start_node():
    pairs = [("a", "b"), ("b", "c"), ("a", "c"), ("d", "c")]
    assert depths(["a", "b", "c", "d"], pairs) == {"a": 0, "b": 1, "c": 2, "d": 0}


def test_each_layer_is_a_row_and_rows_are_centred():
    definition = {
        "nodes": [node("a"), node("b"), node("c"), node("d")],
        "edges": [
            {"source": "a", "target": "b"},
            {"source": "a", "target": "c"},
            {"source": "b", "target": "d"},
            {"source": "c", "target": "d", "condition": "true"},
        ],
    }
    drawn = picture(definition)
    placed = {n.id: n for n in drawn.nodes}
    assert placed["a"].y < placed["b"].y == placed["c"].y < placed["d"].y
    assert placed["b"].x < placed["c"].x
    assert placed["a"].x == placed["d"].x == (placed["b"].x + placed["c"].x) // 2
    assert drawn.height == placed["d"].y + NODE_H + 12
    assert [e.conditional for e in drawn.edges] == [False, False, False, True]
    assert drawn.edges[0].path.startswith(
        f"M{placed['a'].x + NODE_W // 2},{placed['a'].y + NODE_H} C"
    )


def test_long_names_are_shortened():
    drawn = picture({"nodes": [node("a", name="A" * 60)], "edges": []})
    assert len(drawn.nodes[0].name) == 24 and drawn.nodes[0].name.endswith("…")


def test_nothing_is_drawn_for_an_empty_or_huge_graph():
    assert picture({"nodes": [], "edges": []}) is None
    many = [node(f"n{i}") for i in range(MAX_NODES + 1)]
    assert picture({"nodes": many, "edges": []}) is None
