"""New orchestration and the editor shell (the editor itself talks to the API)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from core.choices import Role
from core.domain_errors import DomainError
from core.pages import membership
from orchestrator.definition.nodes import palette
from orchestrator.models import Orchestration
from orchestrator.pages.handover import take_secrets
from orchestrator.services.orchestrations import create_orchestration

STARTER_DEFINITION = {
    "inputs": [{"name": "topic", "type": "string", "required": True}],
    "nodes": [
        {
            "id": "draft",
            "type": "agent",
            "name": "Draft",
            "config": {
                "agent": {"name": "writer", "model": "builtin/echo"},
                "prompt": "Write a short note about {{ input.topic }}.",
            },
            "position": {"x": 0, "y": 0},
        }
    ],
    "edges": [],
}


@login_required
@require_http_methods(["GET", "POST"])
def new_orchestration(request: HttpRequest) -> HttpResponse:
    current = membership(request)
    error, name, description = "", "", ""
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        description = request.POST.get("description", "").strip()
        if current.role not in (Role.EDITOR, Role.ADMIN):
            error = "Your role in this organization cannot create orchestrations."
        elif not name:
            error = "Give the orchestration a name."
        else:
            try:
                orchestration = create_orchestration(
                    current.organization,
                    {"name": name, "description": description, "definition": STARTER_DEFINITION},
                    user=request.user,
                )
            except DomainError as exc:
                error = str(exc.detail)
            else:
                return redirect("editor", pk=orchestration.pk)
    return render(
        request,
        "orchestrator/new.html",
        {"nav": "dashboard", "error": error, "name": name, "description": description},
    )


@login_required
def editor(request: HttpRequest, pk) -> HttpResponse:
    current = membership(request)
    orchestration = get_object_or_404(
        Orchestration.objects.alive(), pk=pk, organization_id=current.organization_id
    )
    return render(
        request,
        "orchestrator/editor.html",
        {
            "nav": "dashboard",
            "orchestration": orchestration,
            "node_types": palette(),
            "can_edit": current.role in (Role.EDITOR, Role.ADMIN),
            "new_secrets": take_secrets(request, orchestration),
        },
    )


@login_required
def editor_by_slug(request: HttpRequest, slug: str) -> HttpResponse:
    """The API takes a slug wherever it takes an orchestration's id; so does the editor's URL,
    which then moves to the id's (a slug may be given to another orchestration later)."""
    current = membership(request)
    orchestration = (
        Orchestration.objects.alive().filter(organization_id=current.organization_id).by_key(slug)
    )
    if orchestration is None:
        raise Http404(f"No orchestration '{slug}' in this organization.")
    return redirect("editor", pk=orchestration.pk)
