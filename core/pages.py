"""What every page's chrome shows: the organization acted in and the role held there.

Apps add their own part of the chrome with a context processor of their own (the approvals
badge comes from `approvals.pages.open_approvals`), so the shell names no domain app.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest

from core.tenancy import membership_for

# The request remembers its membership, looked up once however many parts of the page ask.
_CACHED = "_membership"


def membership(request: HttpRequest) -> Any:
    """The signed-in user's membership (their default organization): 404 when they have none."""
    if not hasattr(request, _CACHED):
        found = membership_for(request.user, None) if request.user.is_authenticated else None
        setattr(request, _CACHED, found)
    cached = getattr(request, _CACHED)
    if cached is None:
        raise Http404("You are not a member of any organization.")
    return cached


def current_membership(request: HttpRequest) -> Any:
    """The membership the chrome shows, or None for a visitor or a user in no organization."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return None
    try:
        return membership(request)
    except Http404:
        return None


def workspace(request: HttpRequest) -> dict[str, Any]:
    current = current_membership(request)
    if current is None:
        return {}
    return {"organization": current.organization, "role": current.role}
