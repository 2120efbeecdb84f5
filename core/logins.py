"""Who a sign-in attempt counts against, for the brute-force limit (django-axes).

Failed sign-ins at `/login/` and `/admin/login/` are counted per (username, client address);
after LOGIN_FAILURE_LIMIT of them that pair is refused, even with the right password, for
LOGIN_LOCKOUT_MINUTES. Both keys are normalized here so that an attacker cannot start a fresh
count by changing how they write them.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

TOO_MANY_REQUESTS = 429


def username_key(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The username as Django's login form reads it (NFKC, surrounding spaces dropped), and
    case-folded: `Alice`, ` alice ` and the same letters in full width all count against `alice`."""
    source = credentials if credentials else request.POST
    raw = str(source.get("username") or "")
    return unicodedata.normalize("NFKC", raw).strip().casefold()


def client_address(request: HttpRequest) -> str:
    """The address the request came from. X-Forwarded-For is written by the client unless a
    proxy of ours rewrites it, so it is read only with BEHIND_PROXY, and then only its last
    entry: the one our proxy appended (`$proxy_add_x_forwarded_for`); entries to its left are
    whatever the client sent."""
    if settings.BEHIND_PROXY:
        forwarded: str = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    address: str = request.META.get("REMOTE_ADDR", "")
    return address


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None,
    credentials: dict[str, Any] | None,
) -> HttpResponse:
    """The sign-in page's own look, saying why and for how long, rather than a bare 403/429."""
    context = {"lockout_minutes": settings.LOGIN_LOCKOUT_MINUTES}
    return render(request, "registration/locked_out.html", context, status=TOO_MANY_REQUESTS)
