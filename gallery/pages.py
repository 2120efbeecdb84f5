"""The public gallery pages: a searchable list, one orchestration with its graph, and fork.

Everything shown is someone else's text, so it goes through Django's autoescape; descriptions
rendered as markdown go through markdown-it (raw HTML off) and nh3.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.html import strip_tags
from django.views.decorators.http import require_POST

from core.choices import Role
from core.domain_errors import NotFound
from core.pages import membership
from core.rendering import markdown_html
from gallery import services
from gallery.content_policy import public_page
from gallery.filtersets import GalleryFilter
from gallery.graph_picture import picture
from orchestrator.models import Orchestration, OrchestrationTag

PAGE_SIZE = 24
TAG_CHOICES = 40
# icon_color goes into a style attribute: escaping stops HTML, not CSS, so only a colour passes.
_COLOR = re.compile(r"^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,20})$")


def safe_color(value: str) -> str:
    return value if _COLOR.match(value or "") else ""


def summary(description: str) -> str:
    """A description as plain text for a card: its markdown rendered, then the tags removed
    (not shown as `**stars**`). Plain text again, so the template escapes it."""
    return html.unescape(strip_tags(markdown_html(description))).strip()


def _popular_tags() -> list[str]:
    rows = (
        OrchestrationTag.objects.filter(
            orchestration__is_public=True, orchestration__deleted_at__isnull=True
        )
        .values("name")
        .annotate(uses=Count("id"))
        .order_by("-uses", "name")[:TAG_CHOICES]
    )
    return [row["name"] for row in rows]


@public_page
def gallery_list(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    tag = request.GET.get("tag", "").strip()
    items = GalleryFilter(
        {"q": q, "tag": tag},
        queryset=services.public_orchestrations().order_by("-fork_count", "-created_at"),
    ).qs
    page = Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))
    cards = [
        {
            "orchestration": o,
            "tags": [t.name for t in o.tag_rows.all()],
            "icon_color": safe_color(o.icon_color),
            "summary": summary(services.public_description(o)),
        }
        for o in page
    ]
    return render(
        request,
        "gallery/list.html",
        {
            "nav": "gallery",
            "cards": cards,
            "page": page,
            "q": q,
            "tag": tag,
            "tags": _popular_tags(),
            "filters": urlencode({key: value for key, value in (("q", q), ("tag", tag)) if value}),
        },
    )


def _public(pk) -> Orchestration:
    try:
        return services.public_orchestration(pk)
    except NotFound:
        raise Http404("No such public orchestration.") from None


@public_page
def gallery_detail(request: HttpRequest, pk) -> HttpResponse:
    orchestration = _public(pk)
    graph = None
    if orchestration.public_definition:
        graph = picture(services.portable_definition(orchestration))
    return render(
        request,
        "gallery/detail.html",
        {
            "nav": "gallery",
            "orchestration": orchestration,
            "tags": [t.name for t in orchestration.tag_rows.all()],
            "icon_color": safe_color(orchestration.icon_color),
            "description_html": markdown_html(services.public_description(orchestration)),
            "graph": graph,
            "login_next": urlencode({"next": request.path}),
        },
    )


@login_required
@require_POST
def gallery_fork(request: HttpRequest, pk) -> HttpResponse:
    current = membership(request)
    if current.role not in (Role.EDITOR, Role.ADMIN):
        raise PermissionDenied("Forking needs the editor role in your organization.")
    try:
        forked = services.fork(str(pk), current.organization, user=request.user)
    except NotFound:
        raise Http404("No such public orchestration with a public definition.") from None
    return redirect(f"/orchestrations/{forked.pk}/")
