"""The approvals inbox: the page shell; the list itself comes from the API and stays live."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from approvals.models import Approval
from core.choices import Role
from core.pages import current_membership, membership


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    current = membership(request)
    return render(
        request,
        "approvals/inbox.html",
        {"nav": "approvals", "can_decide": current.role in (Role.EDITOR, Role.ADMIN)},
    )


@login_required
@require_GET
def pending_count(request: HttpRequest) -> JsonResponse:
    """What the nav's Approvals badge shows, read again while a page stays open."""
    return JsonResponse({"pending": pending_approvals(membership(request).organization_id)})


def pending_approvals(organization_id) -> int:
    return Approval.objects.filter(organization_id=organization_id, status="pending").count()


def open_approvals(request: HttpRequest) -> dict:
    """Context processor: the count on the nav's Approvals badge, on every page."""
    current = current_membership(request)
    if current is None:
        return {}
    return {"pending_approvals": pending_approvals(current.organization_id)}
