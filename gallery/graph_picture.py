"""A read-only picture of a definition's graph, laid out in Python for an inline SVG.

Public pages load no editor script, so the layout is computed here: each node sits in the layer
of its topological depth (the longest path from a start node), layers stacked top to bottom and
centred. Names are returned as plain strings; the template escapes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.definition.graph import depths

NODE_W, NODE_H = 196, 46
GAP_X, GAP_Y = 28, 46
MARGIN = 12
MAX_LABEL = 24
MAX_NODES = 150


@dataclass(frozen=True)
class PlacedNode:
    id: str
    name: str
    type: str
    x: int
    y: int


@dataclass(frozen=True)
class PlacedEdge:
    path: str
    conditional: bool


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    nodes: list[PlacedNode]
    edges: list[PlacedEdge]
    node_w: int = NODE_W
    node_h: int = NODE_H


def _label(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def picture(definition: dict) -> Picture | None:
    """The laid-out graph, or None when there is nothing (or too much) to draw."""
    nodes = definition.get("nodes") or []
    if not nodes or len(nodes) > MAX_NODES:
        return None
    node_ids = [node["id"] for node in nodes]
    edges = definition.get("edges") or []
    pairs = [(edge["source"], edge["target"]) for edge in edges]
    depth = depths(node_ids, pairs)
    layers: dict[int, list[dict]] = {}
    for node in nodes:
        layers.setdefault(depth.get(node["id"], 0), []).append(node)
    widest = max(len(layer) for layer in layers.values())
    width = 2 * MARGIN + widest * NODE_W + (widest - 1) * GAP_X
    height = 2 * MARGIN + len(layers) * NODE_H + (len(layers) - 1) * GAP_Y

    placed: dict[str, PlacedNode] = {}
    for level, layer in sorted(layers.items()):
        row_width = len(layer) * NODE_W + (len(layer) - 1) * GAP_X
        left = (width - row_width) // 2
        for column, node in enumerate(layer):
            placed[node["id"]] = PlacedNode(
                id=node["id"],
                name=_label(node.get("name") or node["id"]),
                type=node["type"],
                x=left + column * (NODE_W + GAP_X),
                y=MARGIN + level * (NODE_H + GAP_Y),
            )
    lines = []
    for edge in edges:
        source, target = placed.get(edge["source"]), placed.get(edge["target"])
        if source is None or target is None:
            continue
        x1, y1 = source.x + NODE_W // 2, source.y + NODE_H
        x2, y2 = target.x + NODE_W // 2, target.y
        bend = max((y2 - y1) // 2, 12)
        lines.append(
            PlacedEdge(
                path=f"M{x1},{y1} C{x1},{y1 + bend} {x2},{y2 - bend} {x2},{y2}",
                conditional=bool(edge.get("condition")),
            )
        )
    return Picture(width=width, height=height, nodes=list(placed.values()), edges=lines)
