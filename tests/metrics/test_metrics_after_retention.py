"""Deleting old runs does not lower a counter: what they counted is carried over, so `rate()`
never sees a drop it would take for a restart from zero."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.models import Organization
from runs.engine import RUN_TERMINAL
from runs.models import Run
from runs.services import lifecycle, retention
from tests.metrics.scrape import Scrape, scrape
from tests.metrics.test_metrics_tenancy import _fire, _scrape_as
from tests.runs.harness import drain

pytestmark = pytest.mark.django_db

CUMULATIVE = {"counter", "histogram"}


def cumulative(metrics: Scrape) -> dict[tuple, float]:
    """Every sample of the counters and histograms, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.text)
        if family.type in CUMULATIVE
        for sample in family.samples
    }


def age_finished_runs(days: int) -> int:
    """Move the finished runs `days` back in time, durations unchanged."""
    shift = timedelta(days=days)
    return Run.objects.filter(status__in=RUN_TERMINAL).update(
        started_at=F("started_at") - shift, finished_at=F("finished_at") - shift
    )


@pytest.fixture
def two_tenants(org, other_org, settings):
    settings.RUN_RETENTION_DAYS = 30
    _fire(org, succeeded=2, failed=1, gated=1)
    _fire(other_org, succeeded=1, gated=1)
    drain()


def test_counters_and_histograms_stay_where_they_were_after_a_prune(two_tenants, settings):
    before = cumulative(scrape(settings))
    assert age_finished_runs(40) == 4

    pruned = retention.prune(batch_size=1)

    assert pruned["runs"] == 4
    assert Run.objects.filter(status__in=RUN_TERMINAL).count() == 0
    after = scrape(settings)
    assert cumulative(after) == pytest.approx(before)
    # Gauges still say what the rows say now: the two open gates.
    assert after.value("orchestrator_runs_in_progress") == 2
    # Every agent step was deleted: its series are still there, whole, from what was carried.
    assert after.value("orchestrator_step_duration_seconds_count", type="agent") == 3
    assert after.value("orchestrator_step_duration_seconds_bucket", type="agent", le="+Inf") == 3


def test_each_organization_keeps_its_own_counts_after_a_prune(two_tenants, org, other_org):
    ours, theirs = cumulative(_scrape_as(org)), cumulative(_scrape_as(other_org))
    age_finished_runs(40)

    retention.prune()

    assert cumulative(_scrape_as(org)) == pytest.approx(ours)
    assert cumulative(_scrape_as(other_org)) == pytest.approx(theirs)


def test_counters_keep_rising_after_a_prune(two_tenants, org, settings):
    age_finished_runs(40)
    retention.prune()
    before = scrape(settings).value("orchestrator_runs_total", status="succeeded", trigger="api")
    assert before == 3

    good = Organization.objects.get(pk=org.pk).orchestrations.get(name="Good")
    lifecycle.fire(good, {})
    drain()
    age_finished_runs(40)
    retention.prune()

    after = scrape(settings)
    assert after.value("orchestrator_runs_total", status="succeeded", trigger="api") == 4
    assert after.value("orchestrator_steps_total", type="agent", status="succeeded") == 4
    assert Run.objects.filter(status="succeeded").count() == 0


def test_a_dry_run_carries_nothing_over(two_tenants, settings):
    before = cumulative(scrape(settings))
    age_finished_runs(40)

    retention.prune(dry_run=True)

    assert cumulative(scrape(settings)) == pytest.approx(before)
