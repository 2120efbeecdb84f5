from __future__ import annotations

import pytest

from orchestrator.services.orchestrations import create_orchestration


@pytest.fixture
def make_flow(org):
    """`make_flow(nodes, edges, **fields)` creates an active orchestration in `org`."""

    def make(nodes, edges=(), *, inputs=(), output=None, output_type="markdown", **fields):
        definition = {
            "nodes": list(nodes),
            "edges": list(edges),
            "inputs": list(inputs),
            "output_type": output_type,
        }
        if output is not None:
            definition["output"] = output
        data = {
            "name": fields.pop("name", "Flow"),
            "definition": definition,
            "status": "active",
            **fields,
        }
        return create_orchestration(org, data)

    return make


def transform(node_id: str, output, **extra) -> dict:
    return {"id": node_id, "type": "transform", "config": {"output": output}, **extra}


def edge(source: str, target: str, condition: str | None = None) -> dict:
    return {"source": source, "target": target, "condition": condition}
