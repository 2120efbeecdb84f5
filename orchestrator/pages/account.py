"""`/settings/`: the signed-in user's own API tokens in their organization, and revoking them."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.pages import membership
from orchestrator.services import tokens


def _own_tokens(request: HttpRequest):
    current = membership(request)
    return tokens.live_tokens(current.organization).filter(user=request.user)


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    return render(
        request, "orchestrator/settings.html", {"nav": "settings", "tokens": _own_tokens(request)}
    )


@login_required
@require_POST
def revoke_token(request: HttpRequest, pk) -> HttpResponse:
    """Only the user's own tokens in this organization: any other id is a 404, as on the API."""
    mine = _own_tokens(request).filter(pk=pk)
    if not tokens.revoke(mine):
        raise Http404("No such token of yours in this organization.")
    messages.success(request, "The token is revoked: it no longer works anywhere.")
    return redirect("settings")
