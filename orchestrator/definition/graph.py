"""Graph algorithms over node ids and (source, target) edges; stable in definition order."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence


def adjacency(
    node_ids: Sequence[str], edges: Iterable[tuple[str, str]]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    successors: dict[str, list[str]] = {node: [] for node in node_ids}
    predecessors: dict[str, list[str]] = {node: [] for node in node_ids}
    for source, target in edges:
        if source in successors and target in predecessors:
            successors[source].append(target)
            predecessors[target].append(source)
    return successors, predecessors


def topological_order(node_ids: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[str]:
    """Kahn's algorithm; ties keep definition order so the same graph always lists the same way.

    Nodes on a cycle are left out: callers check `find_cycle` first.
    """
    successors, predecessors = adjacency(node_ids, edges)
    position = {node: index for index, node in enumerate(node_ids)}
    indegree = {node: len(preds) for node, preds in predecessors.items()}
    heap = [position[node] for node in node_ids if indegree[node] == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        node = node_ids[heapq.heappop(heap)]
        order.append(node)
        for nxt in successors[node]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                heapq.heappush(heap, position[nxt])
    return order


def depths(node_ids: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each node's longest distance from a node without predecessors: the layer it is drawn in.

    Nodes on a cycle are left out, as in `topological_order`.
    """
    pairs = list(edges)
    _, predecessors = adjacency(node_ids, pairs)
    depth: dict[str, int] = {}
    for node in topological_order(node_ids, pairs):
        depth[node] = max((depth[p] + 1 for p in predecessors[node] if p in depth), default=0)
    return depth


def find_cycle(node_ids: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[str] | None:
    """One cycle as a path that returns to its start (a -> b -> a), or None. Iterative DFS."""
    successors, _ = adjacency(node_ids, edges)
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(node_ids, white)
    for root in node_ids:
        if colour[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        colour[root] = grey
        while stack:
            node, index = stack[-1]
            children = successors[node]
            if index < len(children):
                stack[-1] = (node, index + 1)
                child = children[index]
                if colour[child] == grey:
                    return [*path[path.index(child) :], child]
                if colour[child] == white:
                    colour[child] = grey
                    stack.append((child, 0))
                    path.append(child)
            else:
                colour[node] = black
                stack.pop()
                path.pop()
    return None


def descendants(node_id: str, edges: Iterable[tuple[str, str]]) -> set[str]:
    successors: dict[str, list[str]] = {}
    for source, target in edges:
        successors.setdefault(source, []).append(target)
    seen: set[str] = set()
    frontier = [node_id]
    while frontier:
        for nxt in successors.get(frontier.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen
