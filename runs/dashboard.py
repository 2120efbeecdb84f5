"""The dashboard (the home page): the organization's orchestrations, each with its latest runs.

It lives in `runs` because it shows runs; `orchestrator` stands below `runs` and cannot read them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.timesince import timesince

from core.choices import Role
from core.pages import membership
from orchestrator.choices import OrchestrationStatus
from orchestrator.models import Orchestration
from runs.models import Run

PAGE_SIZE = 25
SPARK_RUNS = 12
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # the bound of an orchestration with fewer runs


def _ago(moment) -> str:
    """'just now' for the last minute (timesince alone says '0 minutes'), then '3 hours ago'."""
    if moment is None:
        return ""
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment)} ago"


def _recent_runs(orchestration_ids: list) -> dict:
    """The latest runs of each orchestration on the page, newest first, in one query.

    Each orchestration's runs are read from its SPARK_RUNS-th newest on, a bound found by a
    subquery that runs once (an index probe): the rows read stay SPARK_RUNS per orchestration
    however many runs it has. A window over all their runs sorted a year of them per page view.
    """
    if not orchestration_ids:
        return {}
    newest_first = Run.objects.order_by("-created_at").values("created_at")
    since = Q()
    for pk in orchestration_ids:
        bound = Subquery(newest_first.filter(orchestration_id=pk)[SPARK_RUNS - 1 : SPARK_RUNS])
        since |= Q(orchestration_id=pk, created_at__gte=Coalesce(bound, Value(EARLIEST)))
    rows = (
        Run.objects.filter(since)
        .order_by("-created_at")
        .values("id", "orchestration_id", "status", "created_at")
    )
    recent: dict = defaultdict(list)
    for row in rows:
        if len(recent[row["orchestration_id"]]) < SPARK_RUNS:  # runs tied with the bound
            recent[row["orchestration_id"]].append(row)
    return recent


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    current = membership(request)
    orchestrations = (
        Orchestration.objects.alive()
        .filter(organization_id=current.organization_id)
        .prefetch_related("tag_rows")
        .order_by("-updated_at")
    )
    q = request.GET.get("q", "").strip()
    status = request.GET.get("status", "")
    tag = request.GET.get("tag", "").strip()
    if q:
        orchestrations = orchestrations.filter(Q(name__icontains=q) | Q(description__icontains=q))
    if status in OrchestrationStatus.values:
        orchestrations = orchestrations.filter(status=status)
    if tag:
        orchestrations = orchestrations.filter(tag_rows__name=tag)
    page = Paginator(orchestrations.distinct(), PAGE_SIZE).get_page(request.GET.get("page"))
    recent = _recent_runs([o.pk for o in page])
    rows = []
    for o in page:
        last_run = (recent.get(o.pk) or [None])[0]
        rows.append(
            {
                "orchestration": o,
                "tags": [t.name for t in o.tag_rows.all()],
                "last_run": last_run,
                "last_run_ago": _ago(last_run["created_at"]) if last_run else "",
                "updated_ago": _ago(o.updated_at),
                "spark": list(reversed(recent.get(o.pk, []))),
            }
        )
    return render(
        request,
        "orchestrator/dashboard.html",
        {
            "nav": "dashboard",
            "rows": rows,
            "page": page,
            "q": q,
            "status": status,
            "tag": tag,
            "statuses": OrchestrationStatus.choices,
            "can_edit": current.role in (Role.EDITOR, Role.ADMIN),
        },
    )
