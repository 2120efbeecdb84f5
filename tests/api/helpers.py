"""Sample definitions used across the API tests, and the check of a field's validation error."""

from __future__ import annotations

import copy

TWO_STEP = {
    "inputs": [{"name": "topic", "type": "string", "required": True}],
    "nodes": [
        {
            "id": "research",
            "type": "agent",
            "config": {"agent": {"model": "builtin/echo"}, "prompt": "Research {{ input.topic }}"},
        },
        {"id": "report", "type": "transform", "config": {"output": "{{ steps.research.output }}"}},
    ],
    "edges": [{"source": "research", "target": "report"}],
}

MARKDOWN = """# Market Research Report
Researches a topic and produces a report.

## Inputs
- topic (string, required): the topic to research

## Agents
### researcher
- model: builtin/echo
You are a meticulous researcher.

## Steps
### research
- agent: researcher
Research {{ input.topic }}.

### report
- type: transform
{{ steps.research.output }}

## Output
- type: markdown
{{ steps.report.output }}
"""


def two_step(**extra) -> dict:
    return {"name": "Research", "definition": copy.deepcopy(TWO_STEP), **extra}


def three_step() -> dict:
    definition = copy.deepcopy(TWO_STEP)
    definition["nodes"].append({"id": "publish", "type": "transform", "config": {"output": "done"}})
    definition["edges"].append({"source": "report", "target": "publish"})
    return definition


def field_errors(response, field: str) -> list[str]:
    """The messages of a `400 validation_error` for `field` (asserting it is one)."""
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "validation_error"
    assert field in body["fields"], body
    return body["fields"][field]
