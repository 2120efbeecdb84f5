"""The `orchestrator_*` Prometheus series, read from the database at scrape time.

Steps run in Celery worker processes and webhooks land on any web process, so counters kept in
one process's memory would miss most of the work. The rows already hold every run, step and
approval; a scrape aggregates them in a fixed number of queries (six, however many rows), so
every process's work is counted and nothing is lost when a process restarts.

A scrape is instance-wide (the operator's METRICS_TOKEN) or one organization's (its admin
service account): the same series over that organization's rows only. Webhook request counts are
instance-wide only: a request is counted before anything ties it to an organization (a body too
large, a token that names no trigger), so they cannot be split.

Counters only count rows that can no longer change (finished runs and steps), so a series never
goes down while its rows exist; deleting old runs shows up as a counter reset, which `rate()`
handles.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from uuid import UUID

from django.db.models import Count, FloatField, Func, Q, QuerySet, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from approvals.models import Approval, ApprovalStatus
from orchestrator.models import WebhookOutcome, WebhookRequestCount
from runs.engine import RUN_TERMINAL, STEP_TERMINAL, RunStatus, StepStatus
from runs.models import Run, StepRun, TriggerKind
from runs.services.progress import WORKER_TYPES

# Runs span seconds (transforms) to hours (approvals); steps are mostly sub-second to minutes.
RUN_BUCKETS_S: tuple[float, ...] = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)
STEP_BUCKETS_S: tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
IN_PROGRESS = (RunStatus.RUNNING, RunStatus.PAUSED)
# A subflow step carries its child run's usage, whose own steps are counted already.
ROLLUP_TYPES = frozenset({"subflow"})


class Seconds(Func):
    """`finished_at - started_at` in seconds, in the database's own arithmetic.

    Django's datetime subtraction works on SQLite through a Python function called per row,
    which a scrape over every finished step cannot afford; `julianday` and `EXTRACT(EPOCH ...)`
    are native. (julianday is exact to ~50 us, far below the smallest bucket.)
    """

    arity = 2
    output_field = FloatField()
    template = "CAST(EXTRACT(EPOCH FROM (%(expressions)s)) AS double precision)"
    arg_joiner = " - "

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s)) * 86400.0)",
            arg_joiner=") - julianday(",
            **extra,
        )


def _bucket_counts(buckets: Sequence[float]) -> dict[str, Count]:
    """One conditional count per bucket, so a whole histogram is one aggregate query."""
    return {
        f"le_{index}": Count("pk", filter=Q(seconds__lte=bound))
        for index, bound in enumerate(buckets)
    }


def _timed(queryset: QuerySet) -> QuerySet:
    return queryset.filter(started_at__isnull=False, finished_at__isnull=False).annotate(
        seconds=Seconds("finished_at", "started_at")
    )


def _histogram_buckets(row: dict, buckets: Sequence[float]) -> list[tuple[str, float]]:
    """Each `le` count already includes the smaller ones, as Prometheus wants: cumulative."""
    pairs = [(floatToGoString(bound), row[f"le_{i}"]) for i, bound in enumerate(buckets)]
    return [*pairs, ("+Inf", row["count"])]


class DatabaseCollector(Collector):
    """Yields every series from aggregate queries; registered on its own registry, so the
    process's default metrics (and their per-process numbers) stay out of `/metrics`.

    `organization_id` narrows every series to that organization's rows; None is the instance."""

    def __init__(self, organization_id: UUID | None = None) -> None:
        self.organization_id = organization_id

    def _of_organization(self, queryset: QuerySet, path: str = "organization_id") -> QuerySet:
        if self.organization_id is None:
            return queryset
        return queryset.filter(**{path: self.organization_id})

    def collect(self) -> Iterator[Metric]:
        run_rows = self._of_organization(Run.objects.order_by())
        step_rows = self._of_organization(StepRun.objects.order_by(), "run__organization_id")
        runs = _run_counts(run_rows)
        steps = _step_rows(step_rows)
        yield _runs_total(runs)
        yield GaugeMetricFamily(
            "orchestrator_runs_in_progress",
            "Runs running or paused (waiting for a person, a timer or a subflow).",
            value=sum(n for (status, _), n in runs.items() if status in IN_PROGRESS),
        )
        yield _run_durations(run_rows)
        yield _steps_total(steps)
        yield _step_durations(step_rows)
        yield GaugeMetricFamily(
            "orchestrator_queue_depth",
            "Work waiting for a worker: queued runs plus due agent and http steps not yet claimed.",
            value=sum(n for (status, _), n in runs.items() if status == RunStatus.QUEUED)
            + sum(
                row["due"]
                for row in steps
                if row["status"] == StepStatus.PENDING and row["node_type"] in WORKER_TYPES
            ),
        )
        yield GaugeMetricFamily(
            "orchestrator_approvals_pending",
            "Approval gates and input forms waiting for an answer.",
            value=self._of_organization(Approval.objects.filter(status=ApprovalStatus.PENDING))
            .order_by()
            .count(),
        )
        yield from _usage(steps)
        if self.organization_id is None:
            yield _webhook_requests()


def _run_counts(runs: QuerySet) -> dict[tuple[str, str], int]:
    rows = runs.values_list("status", "trigger_kind").annotate(n=Count("pk"))
    return {(status, kind): n for status, kind, n in rows}


def _step_rows(steps: QuerySet) -> list[dict]:
    """One row per (node type, status): counts, due pending attempts, tokens and cost."""
    due = Q(wake_at__isnull=True) | Q(wake_at__lte=timezone.now())
    rows = steps.values("node_type", "status").annotate(
        n=Count("pk"),
        due=Count("pk", filter=due),
        tokens_input=Sum("tokens_input"),
        tokens_output=Sum("tokens_output"),
        cost=Sum("cost_usd"),
    )
    return sorted(rows, key=lambda row: (row["node_type"], row["status"]))


def _runs_total(runs: dict[tuple[str, str], int]) -> Metric:
    family = CounterMetricFamily(
        "orchestrator_runs",
        "Runs that ended, by final status and by what started them.",
        labels=["status", "trigger"],
    )
    # Every combination from the first scrape on, so that the first failure is an increase
    # `rate()` can see rather than a series appearing out of nowhere.
    statuses = sorted(str(status) for status in RUN_TERMINAL)
    for status in statuses:
        for kind in TriggerKind.values:
            family.add_metric([status, kind], runs.get((status, kind), 0))
    return family


def _run_durations(runs: QuerySet) -> Metric:
    row = _timed(runs).aggregate(
        count=Count("pk"), total=Sum("seconds"), **_bucket_counts(RUN_BUCKETS_S)
    )
    return HistogramMetricFamily(
        "orchestrator_run_duration_seconds",
        "Time from a run's start to its end, for runs that started and ended.",
        buckets=_histogram_buckets(row, RUN_BUCKETS_S),
        sum_value=row["total"] or 0.0,
    )


def _steps_total(steps: list[dict]) -> Metric:
    family = CounterMetricFamily(
        "orchestrator_steps",
        "Step attempts that ended, by node type and final status (a retry is a new attempt).",
        labels=["type", "status"],
    )
    for row in steps:
        if row["status"] in STEP_TERMINAL:
            family.add_metric([row["node_type"], row["status"]], row["n"])
    return family


def _step_durations(steps: QuerySet) -> Metric:
    rows = (
        _timed(steps)
        .values("node_type")
        .annotate(count=Count("pk"), total=Sum("seconds"), **_bucket_counts(STEP_BUCKETS_S))
    )
    family = HistogramMetricFamily(
        "orchestrator_step_duration_seconds",
        "Time from a step attempt's start to its end, by node type.",
        labels=["type"],
    )
    for row in sorted(rows, key=lambda row: row["node_type"]):
        family.add_metric(
            [row["node_type"]], _histogram_buckets(row, STEP_BUCKETS_S), row["total"] or 0.0
        )
    return family


def _usage(steps: list[dict]) -> Iterator[Metric]:
    counted = [row for row in steps if row["node_type"] not in ROLLUP_TYPES]
    tokens = CounterMetricFamily(
        "orchestrator_llm_tokens",
        "LLM tokens used by agent steps, by direction.",
        labels=["direction"],
    )
    for direction in ("input", "output"):
        tokens.add_metric([direction], sum(row[f"tokens_{direction}"] or 0 for row in counted))
    yield tokens
    cost = sum((row["cost"] or Decimal(0) for row in counted), Decimal(0))
    yield CounterMetricFamily(
        "orchestrator_cost_usd",
        "Estimated LLM cost of all steps, in US dollars.",
        value=float(cost),
    )


def _webhook_requests() -> Metric:
    counts = dict.fromkeys(WebhookOutcome.values, 0)
    counts.update(WebhookRequestCount.objects.values_list("outcome", "count"))
    family = CounterMetricFamily(
        "orchestrator_webhook_requests",
        "Inbound webhook requests handled by any web process, by outcome.",
        labels=["outcome"],
    )
    for outcome, count in sorted(counts.items()):
        family.add_metric([outcome], count)
    return family


def exposition(organization_id: UUID | None = None) -> bytes:
    """The text format of every series, freshly read from the database: the instance's, or one
    organization's. A registry per scrape, since the collector carries the organization."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(organization_id))
    return generate_latest(registry)
