"""One fired run and its subflows, at any depth, create at most max_runs_per_root runs and
max_steps_per_root steps: a flow calling itself twice per level cannot fan out to 2^depth."""

from __future__ import annotations

import pytest

from orchestrator.models import Orchestration
from runs.models import Run, StepRun
from tests.runs.conftest import edge, transform
from tests.runs.harness import run_to_rest

pytestmark = pytest.mark.django_db


def _self_calling(make_flow, slug: str = "fan", *, extra_nodes: int = 0, **settings):
    """Two subflow steps per level, each running this same orchestration again (a full binary
    tree of 63 runs at the default depth limit of 5)."""
    nodes = [
        {"id": name, "type": "subflow", "config": {"orchestration": slug}} for name in ("a", "b")
    ]
    nodes += [transform(f"t{index}", index) for index in range(extra_nodes)]
    return make_flow(nodes, name=slug.title(), slug=slug, settings=settings)


def _tree(root: Run) -> list[Run]:
    return list(Run.objects.filter(pk=root.pk) | Run.objects.filter(root_run=root))


@pytest.mark.parametrize("limit", [1, 2, 10, 40])
def test_a_self_calling_flow_creates_at_most_max_runs_per_root(make_flow, limit):
    root = run_to_rest(_self_calling(make_flow, max_runs_per_root=limit))
    assert root.status == "failed"
    assert root.error["code"] == "run_limit_exceeded"
    assert Run.objects.count() == len(_tree(root)) == limit


def test_the_failing_subflow_step_says_which_limit_and_where(make_flow):
    root = run_to_rest(_self_calling(make_flow, max_runs_per_root=1))
    step = StepRun.objects.get(run=root, node_id="a")
    assert step.error["code"] == "run_limit_exceeded"
    assert "max_runs_per_root 1" in step.error["message"]
    assert str(root.pk) in step.error["message"]


def test_without_a_setting_the_instance_default_bounds_the_tree(make_flow, settings):
    settings.MAX_RUNS_PER_ROOT = 7
    root = run_to_rest(_self_calling(make_flow))
    assert (root.status, root.error["code"]) == ("failed", "run_limit_exceeded")
    assert Run.objects.count() == 7


@pytest.mark.parametrize(("limit", "runs"), [(3, 1), (12, 4), (30, 10)])
def test_steps_of_the_whole_tree_are_bounded_by_max_steps_per_root(make_flow, limit, runs):
    # Three nodes a run: a child is refused when it would take the tree's steps over the limit.
    root = run_to_rest(_self_calling(make_flow, extra_nodes=1, max_steps_per_root=limit))
    assert (root.status, root.error["code"]) == ("failed", "run_limit_exceeded")
    assert Run.objects.count() == runs
    assert sum(run.steps_total for run in _tree(root)) <= limit


def test_the_root_runs_orchestration_sets_the_bound_not_the_childrens(make_flow):
    _self_calling(make_flow, max_runs_per_root=1000)
    entry = make_flow(
        [{"id": "call", "type": "subflow", "config": {"orchestration": "fan"}}],
        name="Entry",
        slug="entry",
        settings={"max_runs_per_root": 5},
    )
    root = run_to_rest(entry)
    assert root.error["code"] == "run_limit_exceeded"
    assert Run.objects.count() == 5
    assert all(run.root_run_id == root.pk for run in Run.objects.exclude(pk=root.pk))


def test_each_fired_run_has_its_own_tree(make_flow):
    flow = _self_calling(make_flow, max_runs_per_root=4)
    first, second = run_to_rest(flow), run_to_rest(flow)
    assert len(_tree(first)) == len(_tree(second)) == 4
    assert Run.objects.count() == 8


def test_a_subflow_within_the_bounds_still_runs(make_flow):
    make_flow([transform("shout", "{{ input.w | upper }}")], inputs=[{"name": "w"}], slug="child")
    parent = make_flow(
        [
            {
                "id": "call",
                "type": "subflow",
                "config": {"orchestration": "child", "input": {"w": "{{ input.w }}"}},
            },
            transform("wrap", "<{{ steps.call.output }}>"),
        ],
        [edge("call", "wrap")],
        inputs=[{"name": "w"}],
        name="Parent",
        settings={"max_runs_per_root": 2, "max_steps_per_root": 3},
    )
    run = run_to_rest(parent, {"w": "hi"})
    assert run.status == "succeeded", run.error
    assert run.output == "<HI>"


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"max_runs_per_root": 0}, "settings.max_runs_per_root"),
        ({"max_runs_per_root": "many"}, "settings.max_runs_per_root"),
        ({"max_steps_per_root": -5}, "settings.max_steps_per_root"),
        ({"max_steps_per_root": 10**9}, "settings.max_steps_per_root"),
    ],
)
def test_bad_tree_limits_are_a_validation_error(editor, limits, field):
    body = {
        "name": "Bad limits",
        "settings": limits,
        "definition": {"nodes": [transform("a", 1)], "edges": []},
    }
    response = editor.post("/api/v1/orchestrations", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert field in response.json()["fields"]


def test_tree_limits_are_settings_of_an_orchestration(editor):
    body = {
        "name": "Limited",
        "settings": {"max_runs_per_root": 20, "max_steps_per_root": None},
        "definition": {"nodes": [transform("a", 1)], "edges": []},
    }
    response = editor.post("/api/v1/orchestrations", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["settings"]["max_runs_per_root"] == 20
    stored = Orchestration.objects.get(pk=response.json()["id"])
    assert stored.settings["max_runs_per_root"] == 20
