"""The transform executor: renders its `output` template inline, in the state change that
starts the step, since it needs neither the network nor a worker."""

from __future__ import annotations

from typing import Any

from orchestrator.definition import render


def run_transform(config: dict[str, Any], context: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The step's recorded input (the template) and its output (the rendered value). A bad
    template raises `TemplateError`, which fails the step without a retry."""
    template = config["output"]
    return {"output": template}, render(template, context)
