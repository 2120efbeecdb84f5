"""Retention deletes finished runs past their organization's retention, in small batches, and
keeps every run something still needs."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals import services as approvals
from approvals.models import Approval
from orchestrator.models import Organization, Trigger, WebhookDelivery
from orchestrator.services.orchestrations import create_orchestration
from runs import tasks
from runs.models import OutputVersion, Run, RunEvent, ShareLink, StepRun
from runs.services import lifecycle, outputs, retention
from tests.runs.conftest import edge, transform
from tests.runs.harness import drain, run_to_rest

pytestmark = pytest.mark.django_db

UUID_PATTERN = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")


def refined(run: Run) -> Run:
    """Refine the run's output once, as the refine task on a worker would: versions 1 and 2."""
    outputs.refine(run, "Shorter.")
    outputs.perform_refine(str(run.pk), "Shorter.", 1)
    assert OutputVersion.objects.filter(run=run).count() == 2
    return run


def ended(run: Run, days_ago: float) -> Run:
    """Pretend the run (and every run of its tree) ended `days_ago` days ago."""
    when = timezone.now() - timedelta(days=days_ago)
    Run.objects.filter(pk=run.pk).update(finished_at=when)
    Run.objects.filter(root_run=run).update(finished_at=when)
    return run


def exists(run: Run) -> bool:
    return Run.objects.filter(pk=run.pk).exists()


@pytest.fixture
def quick(make_flow):
    return make_flow([transform("a", "{{ 1 + 1 }}")], name="Quick")


@pytest.fixture
def old_run(quick):
    """`old_run(days_ago, flow=quick)`: a succeeded run that ended that long ago."""

    def make(days_ago: float, flow=None) -> Run:
        run = run_to_rest(flow or quick)
        assert run.status == "succeeded", run.error
        return ended(run, days_ago)

    return make


def test_a_finished_run_past_the_retention_goes_with_its_steps_events_and_approvals(
    make_flow, settings, django_user_model
):
    settings.RUN_RETENTION_DAYS = 30
    approver = django_user_model.objects.create_user("ann")
    gated = make_flow(
        [{"id": "gate", "type": "approval", "config": {"prompt": "Ok?"}}, transform("b", "done")],
        [edge("gate", "b")],
        name="Gated",
    )
    run, _ = lifecycle.fire(gated, {})
    drain()
    approvals.decide(Approval.objects.get(run=run).pk, approve=True, user=approver)
    drain()
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    refined(run)
    outputs.share(run)
    outputs.unshare(run)
    ended(run, 31)

    counts = retention.prune()

    assert not exists(run)
    for model in (StepRun, RunEvent, Approval, OutputVersion, ShareLink):
        assert not model.objects.filter(run_id=run.pk).exists(), model
    assert counts["runs"] == 1
    assert counts["steps"] == 2
    assert counts["approvals"] == 1
    assert counts["output_versions"] == 2
    assert counts["share_links"] == 1
    assert counts["events"] > 0


def test_a_run_that_ended_inside_the_retention_is_kept(old_run, settings):
    settings.RUN_RETENTION_DAYS = 30
    recent, old = old_run(29.9), old_run(30.1)

    retention.prune()

    assert exists(recent)
    assert not exists(old)


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_every_kind_of_ending_is_pruned(old_run, settings, status):
    settings.RUN_RETENTION_DAYS = 30
    run = old_run(40)
    Run.objects.filter(pk=run.pk).update(status=status)

    retention.prune()

    assert not exists(run)


def test_a_run_in_progress_is_kept_however_old(make_flow, settings):
    settings.RUN_RETENTION_DAYS = 1
    gated = make_flow([{"id": "gate", "type": "approval", "config": {}}], name="Gated")
    run, _ = lifecycle.fire(gated, {})
    drain()
    long_ago = timezone.now() - timedelta(days=400)
    Run.objects.filter(pk=run.pk).update(created_at=long_ago, started_at=long_ago)

    retention.prune()

    run.refresh_from_db()
    assert run.status == "paused"
    assert StepRun.objects.filter(run=run).exists()


def test_a_shared_run_is_kept_until_its_link_is_revoked(old_run, settings):
    settings.RUN_RETENTION_DAYS = 30
    run = refined(old_run(90))
    outputs.share(run)

    retention.prune()
    assert exists(run)
    assert OutputVersion.objects.filter(run=run).exists()

    outputs.unshare(run)
    retention.prune()
    assert not exists(run)


def test_a_run_being_refined_is_kept(old_run, settings):
    settings.RUN_RETENTION_DAYS = 30
    run = old_run(90)
    Run.objects.filter(pk=run.pk).update(refine_status="refining")

    retention.prune()

    assert exists(run)


def test_a_run_whose_replay_is_still_going_is_kept(make_flow, old_run, settings):
    settings.RUN_RETENTION_DAYS = 30
    gated = make_flow([{"id": "gate", "type": "approval", "config": {}}], name="Gated")
    original = run_to_rest(gated)
    Run.objects.filter(pk=original.pk).update(status="cancelled")
    ended(original, 90)
    replay = lifecycle.replay(Run.objects.get(pk=original.pk))
    drain()
    assert Run.objects.get(pk=replay.pk).status == "paused"

    retention.prune()
    assert exists(original)

    Run.objects.filter(pk=replay.pk).update(status="cancelled", finished_at=timezone.now())
    retention.prune()
    assert not exists(original)
    assert Run.objects.get(pk=replay.pk).replays_run_id is None


def test_an_organization_can_keep_its_runs_for_good(old_run, org, other_org, settings):
    settings.RUN_RETENTION_DAYS = 30
    org.run_retention_days = 0
    org.save()
    ours = old_run(3650)
    theirs = old_run(
        40, create_orchestration(other_org, {"name": "Q", "status": "active", **_quick_def()})
    )

    retention.prune()

    assert exists(ours)
    assert not exists(theirs)


def test_an_organization_keeps_runs_shorter_or_longer_than_the_instance(
    old_run, org, other_org, settings
):
    settings.RUN_RETENTION_DAYS = 30
    org.run_retention_days = 7
    org.save()
    other_org.run_retention_days = 90
    other_org.save()
    theirs = create_orchestration(other_org, {"name": "Q", "status": "active", **_quick_def()})
    ours_10, ours_5 = old_run(10), old_run(5)
    theirs_60, theirs_100 = old_run(60, theirs), old_run(100, theirs)

    retention.prune()

    assert [exists(r) for r in (ours_10, ours_5, theirs_60, theirs_100)] == [
        False,
        True,
        True,
        False,
    ]


def test_zero_days_on_the_instance_keeps_everything(old_run, settings):
    settings.RUN_RETENTION_DAYS = 0
    run = old_run(3650)

    assert retention.prune()["runs"] == 0
    assert exists(run)


def _quick_def() -> dict:
    return {"definition": {"nodes": [transform("a", "x")], "edges": []}}


@pytest.fixture
def tree(make_flow):
    """A parent whose subflow step runs a child flow; returns (parent run, child run)."""
    make_flow([transform("shout", "hi")], name="Child")
    parent = make_flow(
        [{"id": "call", "type": "subflow", "config": {"orchestration": "child"}}],
        name="Parent",
    )
    run = run_to_rest(parent)
    assert run.status == "succeeded", run.error
    return run, Run.objects.get(parent_run=run)


def test_a_fired_run_goes_with_its_subflow_runs(tree, settings):
    settings.RUN_RETENTION_DAYS = 30
    parent, child = tree
    ended(parent, 40)

    retention.prune()

    assert not exists(parent)
    assert not exists(child)


def test_a_tree_with_a_subflow_run_still_going_is_kept(tree, settings):
    settings.RUN_RETENTION_DAYS = 30
    parent, child = tree
    ended(parent, 40)
    Run.objects.filter(pk=child.pk).update(status="running", finished_at=None)

    retention.prune()

    assert exists(parent)
    assert exists(child)


def test_a_tree_whose_subflow_run_ended_inside_the_retention_is_kept(tree, settings):
    settings.RUN_RETENTION_DAYS = 30
    parent, child = tree
    ended(parent, 40)
    Run.objects.filter(pk=child.pk).update(finished_at=timezone.now() - timedelta(days=10))

    retention.prune()

    assert exists(parent)
    assert exists(child)


def test_a_subflow_run_is_not_pruned_apart_from_its_tree(tree, settings):
    settings.RUN_RETENTION_DAYS = 30
    parent, child = tree
    Run.objects.filter(pk=child.pk).update(finished_at=timezone.now() - timedelta(days=40))

    retention.prune()

    assert exists(parent)
    assert exists(child)


def test_a_shared_subflow_run_keeps_its_tree(tree, settings):
    settings.RUN_RETENTION_DAYS = 30
    parent, child = tree
    ended(parent, 40)
    outputs.share(child)

    retention.prune()

    assert exists(parent)
    assert exists(child)


def test_runs_are_deleted_in_batches_of_the_configured_size(old_run, settings):
    settings.RUN_RETENTION_DAYS = 30
    runs = [old_run(40 + i) for i in range(5)]

    with CaptureQueriesContext(connection) as queries:
        counts = retention.prune(batch_size=2)

    run_deletes = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith('DELETE FROM "runs_run"')
    ]
    assert len(run_deletes) == 3  # 2 + 2 + 1
    assert [len(UUID_PATTERN.findall(sql)) for sql in run_deletes] == [2, 2, 1]
    assert counts["runs"] == 5
    assert not any(exists(run) for run in runs)


def test_the_batch_size_setting_is_used(old_run, settings):
    settings.RUN_RETENTION_DAYS = 30
    settings.RETENTION_BATCH_SIZE = 1
    for days in (40, 41, 42):
        old_run(days)

    with CaptureQueriesContext(connection) as queries:
        retention.prune()

    deletes = [q for q in queries.captured_queries if q["sql"].startswith('DELETE FROM "runs_run"')]
    assert len(deletes) == 3


@pytest.fixture
def webhook(org, quick) -> Trigger:
    return Trigger.objects.create(orchestration=quick, kind="webhook", webhook_token="t" * 32)


def delivery(trigger: Trigger, signature: str, days_ago: float) -> WebhookDelivery:
    made = WebhookDelivery.objects.create(trigger=trigger, signature=signature)
    WebhookDelivery.objects.filter(pk=made.pk).update(
        created_at=timezone.now() - timedelta(days=days_ago)
    )
    return made


def test_webhook_deliveries_past_the_retention_go_and_recent_ones_stay(webhook, settings):
    settings.RUN_RETENTION_DAYS = 30
    old = delivery(webhook, "a" * 64, 31)
    recent = delivery(webhook, "b" * 64, 0)

    counts = retention.prune(batch_size=1)

    assert counts["deliveries"] == 1
    assert not WebhookDelivery.objects.filter(pk=old.pk).exists()
    assert WebhookDelivery.objects.filter(pk=recent.pk).exists()


def test_webhook_deliveries_follow_their_organization_retention(webhook, org, settings):
    settings.RUN_RETENTION_DAYS = 30
    org.run_retention_days = 0
    org.save()
    old = delivery(webhook, "a" * 64, 400)

    retention.prune()

    assert WebhookDelivery.objects.filter(pk=old.pk).exists()


def test_a_dry_run_counts_and_deletes_nothing(tree, old_run, webhook, settings, capsys):
    settings.RUN_RETENTION_DAYS = 30
    parent, _ = tree
    ended(parent, 40)
    lone = old_run(50)
    delivery(webhook, "c" * 64, 60)

    call_command("prune_runs", "--dry-run")

    out = capsys.readouterr().out
    assert "would delete 3 runs" in out
    assert "would delete 1 deliveries" in out
    assert exists(parent)
    assert exists(lone)
    assert WebhookDelivery.objects.exists()

    call_command("prune_runs")

    out = capsys.readouterr().out
    assert "deleted 3 runs" in out
    assert "deleted 1 deliveries" in out
    assert not Run.objects.exists()


def test_the_command_refuses_a_batch_size_below_one():
    with pytest.raises(Exception, match="at least 1"):
        call_command("prune_runs", "--batch-size", "0")


def test_beat_prunes_through_the_task(old_run, settings):
    settings.RUN_RETENTION_DAYS = 30
    run = old_run(40)

    assert settings.CELERY_BEAT_SCHEDULE["prune-runs"]["task"] == "runs.tasks.prune_runs"
    assert tasks.prune_runs()["runs"] == 1
    assert not exists(run)


def test_the_admin_shows_the_retention_in_force_and_edits_the_override(operator, org, settings):
    settings.RUN_RETENTION_DAYS = 30
    page = operator.get(f"/admin/orchestrator/organization/{org.pk}/change/")
    assert page.status_code == 200
    assert "deleted 30 days after they end" in page.content.decode()
    assert "RUN_RETENTION_DAYS" in page.content.decode()

    response = operator.post(
        f"/admin/orchestrator/organization/{org.pk}/change/",
        {
            "name": org.name,
            "slug": org.slug,
            "run_retention_days": "0",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Organization.objects.get(pk=org.pk).run_retention_days == 0
    page = operator.get(f"/admin/orchestrator/organization/{org.pk}/change/")
    assert "kept for good" in page.content.decode()
