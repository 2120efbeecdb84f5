"""What changed between two definitions: the answer behind version diffs in the editor."""

from __future__ import annotations

from typing import Any


def _changes(
    before: dict[Any, dict[str, Any]], after: dict[Any, dict[str, Any]], key_name: str
) -> dict[str, Any]:
    added = [key for key in after if key not in before]
    removed = [key for key in before if key not in after]
    changed = []
    for key in after:
        if key in before and before[key] != after[key]:
            old, new = before[key], after[key]
            fields = sorted(f for f in set(old) | set(new) if old.get(f) != new.get(f))
            changed.append({key_name: key, "fields": fields, "before": old, "after": new})
    return {"added": added, "removed": removed, "changed": changed}


def diff_definitions(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Nodes are matched by id, inputs by name, edges by (source, target) — edge ids are
    generated, so two saves of the same graph may number them differently."""
    nodes = _changes(
        {n["id"]: n for n in a.get("nodes", [])}, {n["id"]: n for n in b.get("nodes", [])}, "id"
    )
    edge_a = {(e["source"], e["target"]): e for e in a.get("edges", [])}
    edge_b = {(e["source"], e["target"]): e for e in b.get("edges", [])}

    def ignore_id(edge: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in edge.items() if k != "id"}

    edges = _changes(
        {k: ignore_id(v) for k, v in edge_a.items()},
        {k: ignore_id(v) for k, v in edge_b.items()},
        "key",
    )
    edges = {
        "added": [edge_b[key] for key in edges["added"]],
        "removed": [edge_a[key] for key in edges["removed"]],
        "changed": [
            {
                "source": c["key"][0],
                "target": c["key"][1],
                "fields": c["fields"],
                "before": edge_a[c["key"]],
                "after": edge_b[c["key"]],
            }
            for c in edges["changed"]
        ],
    }
    inputs = _changes(
        {i["name"]: i for i in a.get("inputs", [])},
        {i["name"]: i for i in b.get("inputs", [])},
        "name",
    )
    return {
        "nodes": nodes,
        "edges": edges,
        "inputs": inputs,
        "output_changed": a.get("output") != b.get("output"),
        "output_type_changed": a.get("output_type") != b.get("output_type"),
    }
