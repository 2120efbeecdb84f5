"""The approvals inbox: the page shell; the list itself comes from the API and stays live."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from orchestrator.choices import Role
from orchestrator.pages.context import membership


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    current = membership(request)
    return render(
        request,
        "approvals/inbox.html",
        {"nav": "approvals", "can_decide": current.role in (Role.EDITOR, Role.ADMIN)},
    )
