"""Retention: finished runs older than their organization's retention are deleted, with their
steps, events, approvals, output versions and revoked share links, and so are old webhook
deliveries.

The unit is a fired run with all its subflows (deleting a run cascades to its children), taken
only when every run of that tree is finished and none is still needed:

- it ended before the cutoff (a run in progress, or one ended recently, keeps its tree);
- it has no live share link (its page, and the output versions it shows, stay until revoked);
- no refine of it is in progress, and no replay of it is still running (deleting it would
  update that replay's row, which its worker locks).

Work goes in small batches, each its own transaction: the fired runs are picked with
`FOR UPDATE SKIP LOCKED` (a run someone holds is left for the next pass, never waited on), and
the rows of a run in progress are never touched, so no worker or request waits on a prune for
longer than one batch takes. Before a batch is deleted, what its runs counted is carried over to
the metrics (runs.metrics.carry_over), so Prometheus counters do not go back.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Model, OuterRef, Q, QuerySet
from django.utils import timezone

from approvals.models import Approval
from orchestrator.models import Organization, WebhookDelivery
from orchestrator.services.webhooks import TOLERANCE_S
from runs import metrics
from runs.engine import RUN_TERMINAL
from runs.models import OutputVersion, RefineStatus, Run, RunEvent, ShareLink, StepRun

logger = logging.getLogger(__name__)

# A signature is accepted while its timestamp is within TOLERANCE_S of the server's clock, and
# that timestamp may be up to TOLERANCE_S ahead when first accepted: its delivery record must
# outlive both, or the same request could start a second run. Retention counts whole days.
REPLAY_WINDOW = timedelta(seconds=2 * TOLERANCE_S)
assert timedelta(days=1) > REPLAY_WINDOW

# What a prune reports, in this order: the model of each count.
COUNTED = {
    "runs": Run,
    "steps": StepRun,
    "events": RunEvent,
    "approvals": Approval,
    "output_versions": OutputVersion,
    "share_links": ShareLink,
    "deliveries": WebhookDelivery,
}


@dataclass(frozen=True)
class Policy:
    """One retention in force: the organizations it applies to and its cutoff."""

    days: int | None  # None: the organizations that follow the instance's setting
    cutoff: datetime

    def organizations(self, path: str = "organization") -> Q:
        field = f"{path}__run_retention_days"
        if self.days is None:
            return Q(**{f"{field}__isnull": True})
        return Q(**{field: self.days})


def policies(now: datetime) -> Iterator[Policy]:
    """One per distinct retention: the instance's, then each organization override but 0."""
    if settings.RUN_RETENTION_DAYS > 0:
        yield Policy(None, now - timedelta(days=settings.RUN_RETENTION_DAYS))
    overrides = (
        Organization.objects.filter(run_retention_days__gt=0)
        .order_by("run_retention_days")
        .values_list("run_retention_days", flat=True)
        .distinct()
    )
    for days in overrides:
        assert days is not None  # filtered above: greater than 0
        yield Policy(days, now - timedelta(days=days))


def _held(cutoff: datetime) -> Q:
    """A run that keeps its whole tree: unfinished, ended after the cutoff, shared, being
    refined, or replayed by a run still going."""
    return (
        ~Q(status__in=RUN_TERMINAL)
        | Q(finished_at__gte=cutoff)
        | Q(refine_status=RefineStatus.REFINING)
        | Exists(ShareLink.objects.filter(run=OuterRef("pk"), revoked_at__isnull=True))
        | Exists(Run.objects.filter(replays_run=OuterRef("pk")).exclude(status__in=RUN_TERMINAL))
    )


def expired_roots(policy: Policy) -> QuerySet[Run]:
    """The fired runs under this policy whose tree may go, oldest first."""
    return (
        Run.objects.filter(
            policy.organizations(),
            root_run__isnull=True,
            status__in=RUN_TERMINAL,
            finished_at__lt=policy.cutoff,
        )
        .exclude(_held(policy.cutoff))
        .exclude(Exists(Run.objects.filter(_held(policy.cutoff), root_run=OuterRef("pk"))))
        .order_by("finished_at")
    )


def expired_deliveries(policy: Policy) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(
        policy.organizations("trigger__orchestration__organization"),
        created_at__lt=policy.cutoff,
    ).order_by("pk")


def _trees(roots: list[UUID] | QuerySet[Any, Any]) -> QuerySet[Run]:
    """The fired runs given and every subflow run under them."""
    return Run.objects.filter(Q(pk__in=roots) | Q(root_run_id__in=roots))


def _delete_batch(policy: Policy, batch_size: int) -> tuple[int, Counter[str]]:
    """One transaction: lock up to `batch_size` expired fired runs (skipping any row someone
    holds), carry their counts over to the metrics, delete them with their subflows. Returns
    how many fired runs were picked, and what went."""
    with transaction.atomic():
        picked = list(
            expired_roots(policy)
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)[:batch_size]
        )
        if not picked:
            return 0, Counter()
        by_organization: dict[UUID, list[UUID]] = {}
        for run_id, organization_id in _trees(picked).values_list("pk", "organization_id"):
            by_organization.setdefault(organization_id, []).append(run_id)
        for organization_id, run_ids in by_organization.items():
            metrics.carry_over(organization_id, run_ids)
        # Deferred fields: the collector needs only the keys, not every step's input and output.
        _, deleted = _trees(picked).only("pk").delete()
    return len(picked), Counter(deleted)


def _delete_deliveries(policy: Policy, batch_size: int) -> int:
    with transaction.atomic():
        ids = list(expired_deliveries(policy).values_list("pk", flat=True)[:batch_size])
        WebhookDelivery.objects.filter(pk__in=ids).delete()
    return len(ids)


def _would_delete(policy: Policy) -> Counter[str]:
    runs = _trees(expired_roots(policy).values("pk")).values("pk")
    counts = Counter({_label(Run): runs.count()})
    for model in (StepRun, RunEvent, Approval, OutputVersion, ShareLink):
        counts[_label(model)] = model.objects.filter(run_id__in=runs).count()
    counts[_label(WebhookDelivery)] = expired_deliveries(policy).count()
    return counts


def _label(model: type[Model]) -> str:
    return model._meta.label


def prune(
    *, now: datetime | None = None, batch_size: int | None = None, dry_run: bool = False
) -> dict[str, int]:
    """Delete what is past its retention, batch after batch until nothing is left; with
    `dry_run`, count what would go and delete nothing. Returns counts by kind (see COUNTED)."""
    now = now or timezone.now()
    size = batch_size or settings.RETENTION_BATCH_SIZE
    totals: Counter[str] = Counter()
    for policy in policies(now):
        if dry_run:
            totals.update(_would_delete(policy))
            continue
        while True:
            picked, deleted = _delete_batch(policy, size)
            totals.update(deleted)
            if picked < size:
                break
        while True:
            removed = _delete_deliveries(policy, size)
            totals[_label(WebhookDelivery)] += removed
            if removed < size:
                break
    counts = {kind: totals[_label(model)] for kind, model in COUNTED.items()}
    if not dry_run and any(counts.values()):
        logger.info("pruned finished runs past their retention", extra=counts)
    return counts
