"""Steps that wait for people (approval, human_input): the step waits and the run pauses,
holding no worker. Deciding them is the approvals app's job."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.definition import TemplateError, render
from runs.engine import StepStatus

if TYPE_CHECKING:
    from runs.services.progress import Progress


def human_request(progress: Progress, node: dict) -> dict:
    """What a person is asked: the prompt and context rendered, the form fields as declared."""
    config = node["config"]
    context = progress.context()
    try:
        prompt = render(config.get("prompt", ""), context)
        agent_context = render(config.get("agent_context", ""), context)
    except TemplateError as exc:
        prompt, agent_context = config.get("prompt", ""), f"(template error: {exc})"
    return {
        "step_id": node["id"],
        "kind": "approval" if node["type"] == "approval" else "input",
        "prompt": prompt,
        "fields": config.get("fields", []),
        "agent_context": agent_context,
    }


def start_human_step(progress: Progress, node: dict) -> None:
    request = human_request(progress, node)
    progress.new_step(node["id"], StepStatus.WAITING, started_at=progress.now, input=request)
    progress.log.add("step_start", node["id"], type=node["type"], name=node["name"], attempt=1)
    progress.log.add("human_input_required", node["id"], run_id=str(progress.run.pk), **request)
