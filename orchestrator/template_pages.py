"""The starter templates page: browse the catalog, and "Use this template" to get a draft."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.choices import Role
from core.pages import membership
from core.rendering import markdown_html
from orchestrator.models import StarterTemplate
from orchestrator.pages.handover import hand_over_secrets
from orchestrator.services import starters


def _can_edit(role: str) -> bool:
    return role in (Role.EDITOR, Role.ADMIN)


@login_required
def template_list(request: HttpRequest) -> HttpResponse:
    current = membership(request)
    q = request.GET.get("q", "").strip()
    category = request.GET.get("category", "").strip()
    templates = StarterTemplate.objects.order_by("category", "name")
    if q:
        templates = templates.filter(Q(name__icontains=q) | Q(description__icontains=q))
    if category:
        templates = templates.filter(category=category)
    cards = [{"template": t, "description_html": markdown_html(t.description)} for t in templates]
    categories = (
        StarterTemplate.objects.order_by("category").values_list("category", flat=True).distinct()
    )
    return render(
        request,
        "orchestrator/starter_templates.html",
        {
            "nav": "templates",
            "cards": cards,
            "q": q,
            "category": category,
            "categories": list(categories),
            "can_edit": _can_edit(current.role),
        },
    )


@login_required
@require_POST
def use_template(request: HttpRequest, template_id: str) -> HttpResponse:
    current = membership(request)
    if not _can_edit(current.role):
        raise PermissionDenied("Using a template needs the editor role.")
    template = get_object_or_404(StarterTemplate, pk=template_id)
    orchestration = starters.instantiate(
        template,
        current.organization,
        name=request.POST.get("name", "").strip()[:200],
        user=request.user,
    )
    hand_over_secrets(request, orchestration)
    return redirect(f"/orchestrations/{orchestration.pk}/")
