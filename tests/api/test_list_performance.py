"""A list page costs the same queries whatever its size, and loads only what it shows.

The list serializers write their fields out by hand for speed; the tests at the end check that
they give exactly what DRF's walk over the declared fields gives.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers

from approvals.models import Approval
from orchestrator.api.orchestration_views import OrchestrationViewSet
from orchestrator.api.serializers import OrchestrationSerializer
from orchestrator.models import Group, Membership, Orchestration, OrchestrationVersion
from orchestrator.services.orchestrations import create_orchestration
from runs.api.serializers import RunSerializer, prefetch_human_input
from runs.models import Run, StepRun
from tests.api.helpers import MARKDOWN, two_step

pytestmark = pytest.mark.django_db

ORCHESTRATIONS = "/api/v1/orchestrations"
RUNS = "/api/v1/runs"
FLOWS = 55
RUN_COUNT = 60


@pytest.fixture
def flows(org) -> list[Orchestration]:
    alice = get_user_model().objects.create(username="alice")
    Membership.objects.create(user=alice, organization=org, role="editor")
    group = Group.objects.create(organization=org, name="Ops")
    made = []
    for index in range(FLOWS):
        data = two_step(name=f"Flow {index}", tags=[f"tag-{n}" for n in range(index % 4)])
        if index % 5 == 0:
            data = {"name": f"Flow {index}", "markdown": MARKDOWN}
        if index % 2:
            data |= {"owner": alice, "group": group, "credit_limit": Decimal("1.25")}
        made.append(create_orchestration(org, data))
    return made


@pytest.fixture
def runs(org, flows) -> list[Run]:
    """Finished, running and paused runs, newest first: every tenth waits for a budget
    approval, every tenth for an agent's tool call to be approved, every tenth for an approval
    step."""
    versions = {v.orchestration_id: v for v in OrchestrationVersion.objects.all()}
    now = timezone.now()
    made = []
    for index in range(RUN_COUNT):
        flow = flows[index % len(flows)]
        paused = index % 5 == 2 or index % 10 == 4
        made.append(
            Run.objects.create(
                organization=org,
                orchestration=flow,
                orchestration_version=versions[flow.pk],
                version=1,
                status="paused" if paused else ("running", "succeeded", "failed")[index % 3],
                trigger_kind="api",
                trigger_ref=flow.pk if index % 4 == 0 else None,
                input={"topic": f"t{index}"},
                output={"text": "done"} if index % 3 == 1 else None,
                error={"code": "step_failed"} if index % 3 == 2 else None,
                replays_run=made[0] if index == 7 else None,
                parent_run=made[1] if index == 8 else None,
                cost_usd=Decimal("0.012345"),
                tokens_input=index,
                steps_completed=1,
                steps_total=2,
                budget_hold=index % 10 == 4,
                requested_by_name="alice" if index % 2 else "",
                refine_error="model down" if index == 9 else "",
                started_at=now,
                finished_at=now + timedelta(milliseconds=index) if index % 3 else None,
            )
        )
    for index, run in enumerate(made):
        Run.objects.filter(pk=run.pk).update(created_at=now - timedelta(seconds=index))
        StepRun.objects.create(run=run, node_id="research", node_type="agent", status="succeeded")
        if run.budget_hold:
            for prompt in ("an older gate", "raise the limit?"):
                Approval.objects.create(
                    organization=org, run=run, step_id="", kind="approval", prompt=prompt
                )
        elif run.status == "paused" and index % 10 == 7:
            step = StepRun.objects.get(run=run, node_id="research")
            StepRun.objects.filter(pk=step.pk).update(status="waiting")
            for tool in ("an older call", "send_mail"):
                Approval.objects.create(
                    organization=org,
                    run=run,
                    step_id="research",
                    kind="tool_call",
                    prompt=f"may it call {tool}?",
                    payload={"tool": tool, "args": {"to": "ops"}},
                )
        elif run.status == "paused":
            StepRun.objects.create(
                run=run,
                node_id="report",
                node_type="approval",
                status="waiting",
                input={"prompt": "ok?", "fields": []},
            )
    return made


def queries_of_page(client, path: str, limit: int) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, {"limit": limit})
    assert response.status_code == 200, response.json()
    assert len(response.json()["items"]) == limit
    return [query["sql"] for query in captured.captured_queries]


def test_a_page_of_orchestrations_costs_the_same_queries_at_10_and_50(
    viewer, flows, django_assert_num_queries
):
    viewer.get(ORCHESTRATIONS)  # the first use of a token writes its last_used_at
    # The token, the page, the tags of the page.
    with django_assert_num_queries(3):
        assert len(viewer.get(ORCHESTRATIONS, {"limit": 10}).json()["items"]) == 10
    with django_assert_num_queries(3):
        assert len(viewer.get(ORCHESTRATIONS, {"limit": 50}).json()["items"]) == 50


def test_a_page_of_runs_costs_the_same_queries_at_10_and_50(
    viewer, runs, django_assert_num_queries
):
    viewer.get(RUNS)
    # The token, the page, then what its paused runs wait for: steps, budget approvals, tool
    # call approvals (one query for each paused agent step before they were read for the page).
    with django_assert_num_queries(5):
        assert len(viewer.get(RUNS, {"limit": 10}).json()["items"]) == 10
    with django_assert_num_queries(5):
        assert len(viewer.get(RUNS, {"limit": 50}).json()["items"]) == 50


def test_a_page_of_runs_without_paused_ones_asks_nothing_about_waiting(
    viewer, runs, django_assert_num_queries
):
    viewer.get(RUNS)
    with django_assert_num_queries(2):
        items = viewer.get(RUNS, {"status": "succeeded"}).json()["items"]
    assert items
    assert all(item["human_input_required"] is None for item in items)


def test_the_orchestration_list_reads_neither_definitions_nor_markdown(viewer, flows):
    viewer.get(ORCHESTRATIONS)
    queries = queries_of_page(viewer, ORCHESTRATIONS, 50)
    page = [sql for sql in queries if 'FROM "orchestrator_orchestration"' in sql]
    assert len(page) == 1
    assert '"orchestrator_orchestration"."slug"' in page[0]
    assert '"orchestrator_orchestration"."definition"' not in page[0]
    assert '"orchestrator_orchestration"."markdown"' not in page[0]
    # The owner's username only, not the whole user row.
    assert '"auth_user"."username"' in page[0]
    assert '"auth_user"."password"' not in page[0]


def test_the_run_list_reads_no_definition_and_only_waiting_steps(viewer, runs):
    viewer.get(RUNS)
    queries = queries_of_page(viewer, RUNS, 50)
    assert not any('"orchestrator_orchestration"."definition"' in sql for sql in queries)
    steps = [sql for sql in queries if 'FROM "runs_steprun"' in sql]
    assert len(steps) == 1
    assert "waiting" in steps[0]
    assert '"runs_steprun"."output"' not in steps[0]


def test_a_run_list_page_reads_its_token_in_one_query(viewer, runs):
    viewer.get(RUNS)
    queries = queries_of_page(viewer, RUNS, 50)
    tokens = [sql for sql in queries if '"orchestrator_apitoken"' in sql]
    assert len(tokens) == 1  # the token, its organization, holder and membership role at once


def test_paused_runs_show_what_they_wait_for_in_the_list_as_in_the_detail(viewer, runs):
    items = viewer.get(RUNS, {"limit": 50}).json()["items"]
    waiting = [item for item in items if item["status"] == "paused"]
    assert waiting
    for item in waiting:
        detail = viewer.get(f"{RUNS}/{item['id']}").json()
        assert item["human_input_required"] == detail["human_input_required"]
        assert item["human_input_required"] is not None
    gates = [item for item in waiting if item["human_input_required"]["step_id"] is None]
    assert gates
    assert all(item["human_input_required"]["prompt"] == "raise the limit?" for item in gates)
    calls = [item for item in waiting if item["human_input_required"].get("kind") == "tool_call"]
    assert calls
    assert all(item["human_input_required"]["tool"] == "send_mail" for item in calls)


def test_list_items_are_the_detail_without_what_only_the_detail_shows(viewer, flows):
    for item in viewer.get(ORCHESTRATIONS, {"limit": 50}).json()["items"]:
        detail = viewer.get(f"{ORCHESTRATIONS}/{item['id']}").json()
        assert {key: detail[key] for key in item} == item
        assert set(detail) - set(item) == {"definition", "triggers", "markdown"}


def drf_representation(serializer: serializers.ModelSerializer, instance) -> dict:
    """What DRF makes of the declared fields, without the hand-written to_representation."""
    return serializers.ModelSerializer.to_representation(serializer, instance)


def test_written_out_orchestration_fields_match_the_declared_ones(org, flows):
    view = OrchestrationViewSet(
        action="list", request=SimpleNamespace(auth=SimpleNamespace(organization=org))
    )
    listed = list(view.get_queryset())  # deferred columns, annotated owner, prefetched tags
    single = [Orchestration.objects.get(pk=flow.pk) for flow in flows]
    serializer = OrchestrationSerializer()
    for orchestration in [*listed, *single]:
        fast = serializer.to_representation(orchestration)
        assert list(fast.items()) == list(drf_representation(serializer, orchestration).items())
    assert list(fast) == OrchestrationSerializer.Meta.fields


def test_written_out_run_fields_match_the_declared_ones(viewer, runs):
    listed = list(Run.objects.annotate(orchestration_name=F("orchestration__name")))
    prefetch_human_input(listed)
    single = [Run.objects.get(pk=run.pk) for run in runs]
    serializer = RunSerializer()
    for run in [*listed, *single]:
        fast = serializer.to_representation(run)
        assert list(fast.items()) == list(drf_representation(serializer, run).items())
    assert list(fast) == RunSerializer.Meta.fields
