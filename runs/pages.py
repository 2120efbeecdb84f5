"""The live run view: the page shell, and the outputs rendered as safe HTML for it."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render

from core.choices import Role
from core.pages import membership
from core.rendering import value_html
from orchestrator.definition.nodes import palette
from runs.models import Run
from runs.services.context import latest_of


def _run(request: HttpRequest, pk) -> Run:
    current = membership(request)
    return get_object_or_404(
        Run.objects.select_related("orchestration", "orchestration_version"),
        pk=pk,
        organization_id=current.organization_id,
    )


@login_required
def run_view(request: HttpRequest, pk) -> HttpResponse:
    run = _run(request, pk)
    definition = run.orchestration_version.definition
    graph = {
        "nodes": [
            {"id": n["id"], "type": n["type"], "name": n.get("name"), "position": n.get("position")}
            for n in definition.get("nodes", [])
        ],
        "edges": [
            {
                "id": e.get("id"),
                "source": e["source"],
                "target": e["target"],
                "condition": e.get("condition"),
            }
            for e in definition.get("edges", [])
        ],
    }
    return render(
        request,
        "runs/run.html",
        {
            "nav": "dashboard",
            "run": run,
            "graph": graph,
            "node_types": palette(),
            "can_edit": membership(request).role in (Role.EDITOR, Role.ADMIN),
        },
    )


@login_required
def rendered_outputs(request: HttpRequest, pk) -> JsonResponse:
    """Step outputs and the run output as sanitized HTML (markdown rendered), for the trace."""
    run = _run(request, pk)
    latest = latest_of(run.step_runs.order_by("attempt").only("node_id", "attempt", "output"))
    return JsonResponse(
        {
            "output": str(value_html(run.output)),
            "steps": {node_id: str(value_html(step.output)) for node_id, step in latest.items()},
        }
    )
