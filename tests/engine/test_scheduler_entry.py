"""Starting a run at an entry node (a trigger's `node_id`), on small hand-drawn graphs."""

from __future__ import annotations

import pytest

from runs.engine import RunStatus, StepStatus, StepView, decide
from tests.engine.test_scheduler import always, conditions, make_graph

S = StepStatus


def test_the_entry_runs_at_once_and_what_it_does_not_feed_is_skipped():
    g = make_graph(["a", "b", "c", "other"], [("a", "b"), ("b", "c")])
    d = decide(g, {}, condition=always, entry="b")
    assert d.ready == ["b"]
    assert d.skipped == ["a", "other"]
    assert d.run_outcome is None


def test_what_the_entry_feeds_runs_as_usual():
    g = make_graph(["a", "b", "c"], [("a", "b"), ("b", "c")])
    steps = {"a": StepView(S.SKIPPED), "b": StepView(S.RUNNING)}
    assert decide(g, steps, condition=always, entry="b").ready == []
    steps["b"] = StepView(S.SUCCEEDED)
    assert decide(g, steps, condition=always, entry="b").ready == ["c"]
    steps["c"] = StepView(S.SUCCEEDED)
    assert decide(g, steps, condition=always, entry="b").run_outcome is RunStatus.SUCCEEDED


def test_a_join_downstream_counts_the_skipped_branch_as_not_taken():
    # a -> b -> join, a -> c -> join; entered at b, the c branch never runs.
    g = make_graph(["a", "b", "c", "join"], [("a", "b"), ("a", "c"), ("b", "join"), ("c", "join")])
    d = decide(g, {}, condition=always, entry="b")
    assert (d.ready, d.skipped) == (["b"], ["a", "c"])
    steps = {"a": StepView(S.SKIPPED), "c": StepView(S.SKIPPED), "b": StepView(S.SUCCEEDED)}
    assert decide(g, steps, condition=always, entry="b").ready == ["join"]


def test_a_join_downstream_is_skipped_when_the_entrys_branch_is_not_taken():
    g = make_graph(["b", "c", "join"], [("b", "join", "go"), ("c", "join")])
    steps = {"b": StepView(S.SUCCEEDED), "c": StepView(S.SKIPPED)}
    d = decide(g, steps, condition=conditions(go=False), entry="b")
    assert d.skipped == ["join"]
    assert d.run_outcome is RunStatus.SUCCEEDED


def test_the_entrys_incoming_conditions_are_never_evaluated():
    g = make_graph(["a", "b"], [("a", "b", "never")])
    assert decide(g, {}, condition=always, entry="b").ready == ["b"]


def test_an_entry_at_a_root_skips_the_other_roots():
    g = make_graph(["a", "b", "c"], [("a", "c"), ("b", "c")])
    d = decide(g, {}, condition=always, entry="a")
    assert (d.ready, d.skipped) == (["a"], ["b"])


def test_no_entry_starts_at_every_root_as_before():
    g = make_graph(["a", "b", "c"], [("a", "c"), ("b", "c")])
    assert decide(g, {}, condition=always).ready == ["a", "b"]
    assert decide(g, {}, condition=always, entry=None).ready == ["a", "b"]


def test_a_failure_downstream_of_the_entry_fails_the_run():
    g = make_graph(["a", "b", "c"], [("a", "b"), ("b", "c")])
    steps = {"a": StepView(S.SKIPPED), "b": StepView(S.FAILED)}
    d = decide(g, steps, condition=always, entry="b")
    assert d.cancelled == ["c"]
    assert (d.run_outcome, d.failed_step) == (RunStatus.FAILED, "b")


def test_an_unknown_entry_is_refused():
    g = make_graph(["a"])
    with pytest.raises(ValueError, match="unknown entry node"):
        decide(g, {}, condition=always, entry="gone")


def test_the_reach_is_computed_once_per_graph():
    g = make_graph(["a", "b", "c"], [("a", "b"), ("b", "c")])
    assert g.reach("b") == frozenset({"b", "c"})
    assert g.reach("b") is g.reach("b")
