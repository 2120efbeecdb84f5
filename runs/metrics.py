"""The `orchestrator_*` Prometheus series, read from the database at scrape time.

Steps run in Celery worker processes and webhooks land on any web process, so counters kept in
one process's memory would miss most of the work. The rows already hold every run, step and
approval; a scrape aggregates them in a fixed number of queries (seven, however many rows), so
every process's work is counted and nothing is lost when a process restarts.

A scrape is instance-wide (the operator's METRICS_TOKEN) or one organization's (its admin
service account): the same series over that organization's rows only. Webhook request counts are
instance-wide only: a request is counted before anything ties it to an organization (a body too
large, a token that names no trigger), so they cannot be split.

Counters only count rows that can no longer change (finished runs and steps), so a series never
goes down while its rows exist. Retention deletes old runs: before it does, `carry_over` adds
what they counted to `PrunedSample` rows, and every scrape adds those back, so counters and
histograms keep rising instead of dropping (which Prometheus would take for a restart from zero,
counting the whole remaining total again as an increase).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from uuid import UUID

from django.db import connection, transaction
from django.db.models import Count, FloatField, Func, Min, Q, QuerySet, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from approvals.models import Approval, ApprovalStatus
from orchestrator.choices import TriggerKind
from orchestrator.definition.nodes import types_running_on
from orchestrator.models import PrunedSample, WebhookOutcome, WebhookRequestCount
from runs.engine import RUN_TERMINAL, STEP_TERMINAL, RunStatus, StepStatus
from runs.models import Run, StepRun

# Runs span seconds (transforms) to hours (approvals); steps are mostly sub-second to minutes.
RUN_BUCKETS_S: tuple[float, ...] = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)
STEP_BUCKETS_S: tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
IN_PROGRESS = (RunStatus.RUNNING, RunStatus.PAUSED)
# A subflow step carries its child run's usage, whose own steps are counted already.
ROLLUP_TYPES = types_running_on("child_run")
# The samples of the families that only go up, which deleted runs must not lower.
CUMULATIVE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
}


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

    `organization_id` narrows every series to that organization's rows; None is the instance.
    `run_ids` narrows them to those runs and leaves out what deleted runs counted: what
    `carry_over` records before they are deleted."""

    def __init__(
        self, organization_id: UUID | None = None, run_ids: Collection[UUID] | None = None
    ) -> None:
        self.organization_id = organization_id
        self.run_ids = run_ids

    def _of_organization(self, queryset: QuerySet, path: str = "organization_id") -> QuerySet:
        if self.organization_id is None:
            return queryset
        return queryset.filter(**{path: self.organization_id})

    def collect(self) -> Iterator[Metric]:
        if self.run_ids is not None:
            yield from self._families()
            return
        with _snapshot():
            pruned = self._pruned()
            families = list(self._families())
        for family in families:
            yield _with_pruned(family, pruned)

    def _pruned(self) -> dict[tuple[str, str], float]:
        rows = (
            self._of_organization(PrunedSample.objects.order_by())
            .values("name", "labels")
            .annotate(total=Sum("value"), first=Min("id"))
            .order_by("first")
        )
        return {(row["name"], row["labels"]): row["total"] for row in rows}

    def _families(self) -> Iterator[Metric]:
        run_rows = self._of_organization(Run.objects.order_by())
        step_rows = self._of_organization(StepRun.objects.order_by(), "run__organization_id")
        if self.run_ids is not None:
            run_rows = run_rows.filter(pk__in=self.run_ids)
            step_rows = step_rows.filter(run_id__in=self.run_ids)
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
                if row["status"] == StepStatus.PENDING
                and row["node_type"] in types_running_on("worker")
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


@contextmanager
def _snapshot() -> Iterator[None]:
    """On PostgreSQL, one snapshot for the rows and the carried-over counts, so a prune that
    commits in between is seen entirely or not at all (never counted twice, never missed).
    SQLite could only give one by taking its write lock (IMMEDIATE transactions), which would
    stall every worker for a scrape: there the reads run as they come, and a prune committing
    between two of them can make one scrape off by that batch."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def _labels_key(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


def _cumulative_names(family: Metric) -> set[str]:
    return {family.name + suffix for suffix in CUMULATIVE_SUFFIXES.get(family.type, ())}


def _with_pruned(family: Metric, pruned: dict[tuple[str, str], float]) -> Metric:
    """The family with what deleted runs had counted added back. A label set whose rows are all
    gone (the last runs of a trigger kind, a node type no longer used) comes back whole, in
    the order it was first carried over, so a histogram's buckets stay together."""
    names = _cumulative_names(family)
    carried = {key: value for key, value in pruned.items() if key[0] in names}
    if not carried:
        return family
    samples = []
    for sample in family.samples:
        extra = carried.pop((sample.name, _labels_key(sample.labels)), 0.0)
        samples.append(sample._replace(value=sample.value + extra))
    samples.extend(
        Sample(name, json.loads(labels), value) for (name, labels), value in carried.items()
    )
    family.samples = samples
    return family


def carry_over(organization_id: UUID, run_ids: Collection[UUID]) -> None:
    """Record what these runs of one organization add to its counters, just before they are
    deleted, in the caller's transaction: the scrape then sees them either counted from their
    rows or carried over, never both, never neither."""
    counted = {
        (sample.name, _labels_key(sample.labels)): float(sample.value)
        for family in DatabaseCollector(organization_id, run_ids).collect()
        for sample in family.samples
        if sample.name in _cumulative_names(family)
    }
    changed = []
    for row in PrunedSample.objects.select_for_update().filter(organization_id=organization_id):
        delta = counted.pop((row.name, row.labels), 0.0)
        if delta:
            row.value += delta
            changed.append(row)
    PrunedSample.objects.bulk_update(changed, ["value"])
    PrunedSample.objects.bulk_create(
        PrunedSample(organization_id=organization_id, name=name, labels=labels, value=value)
        for (name, labels), value in counted.items()
    )


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
