"""What every page's chrome shows: the organization acted in and the open approvals."""

from __future__ import annotations

from django.http import Http404, HttpRequest

from orchestrator.models import Membership
from orchestrator.tenancy import membership_for


def membership(request: HttpRequest) -> Membership:
    """The signed-in user's membership (their default organization): 404 when they have none."""
    if not hasattr(request, "_membership"):
        request._membership = (
            membership_for(request.user, None) if request.user.is_authenticated else None
        )
    if request._membership is None:
        raise Http404("You are not a member of any organization.")
    return request._membership


def workspace(request: HttpRequest) -> dict:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    try:
        current = membership(request)
    except Http404:
        return {}
    return {
        "organization": current.organization,
        "role": current.role,
        "pending_approvals": pending_approvals(current.organization_id),
    }


def pending_approvals(organization_id) -> int:
    from approvals.models import Approval

    return Approval.objects.filter(organization_id=organization_id, status="pending").count()
