"""The scheduler's semantics, one behaviour per test, on small hand-drawn graphs."""

from __future__ import annotations

import itertools
import time

import pytest

from runs.engine import Decision, Graph, RunStatus, StepStatus, StepView, decide

S = StepStatus


def make_graph(nodes, edges=(), *, on_error=None):
    """`nodes`: ids; `edges`: (source, target) or (source, target, condition) tuples."""
    on_error = on_error or {}
    defn = {
        "nodes": [
            {
                "id": n,
                "type": "transform",
                "name": n,
                "config": {},
                "retry": {"max_attempts": 1, "backoff_s": 1.0, "backoff_factor": 2.0},
                "timeout_s": None,
                "on_error": on_error.get(n, "fail"),
                "output_key": None,
            }
            for n in nodes
        ],
        "edges": [
            {
                "id": f"{e[0]}->{e[1]}",
                "source": e[0],
                "target": e[1],
                "condition": e[2] if len(e) > 2 else None,
            }
            for e in edges
        ],
        "output": None,
        "output_type": "markdown",
        "inputs": [],
    }
    return Graph.from_definition(defn)


def always(edge, view):
    raise AssertionError(f"no condition should be evaluated here (edge {edge['id']})")


def conditions(**truth):
    """A condition callable reading `edge["condition"]` as a key of `truth`."""

    def evaluate(edge, view):
        return truth[edge["condition"]]

    return evaluate


def views(**statuses):
    return {n: StepView(S(s)) for n, s in statuses.items()}


def test_graph_keeps_definition_order_and_sorts_topologically():
    g = make_graph(["c", "a", "b"], [("b", "c"), ("a", "b")])
    assert g.node_ids == ("c", "a", "b")
    assert g.order == ("a", "b", "c")
    assert [e["target"] for e in g.outgoing["a"]] == ["b"]
    assert [e["source"] for e in g.incoming["c"]] == ["b"]
    assert g.nodes["a"]["id"] == "a"


def test_topological_ties_follow_definition_order():
    g = make_graph(["z", "y", "x", "end"], [("z", "end"), ("y", "end"), ("x", "end")])
    assert g.order == ("z", "y", "x", "end")


@pytest.mark.parametrize(
    ("nodes", "edges"),
    [
        (["a", "b"], [("a", "b"), ("b", "a")]),
        (["a"], [("a", "missing")]),
        (["a", "a"], []),
    ],
)
def test_a_broken_graph_is_rejected(nodes, edges):
    with pytest.raises(ValueError):
        make_graph(nodes, edges)


def test_nodes_without_incoming_edges_are_ready_at_the_start():
    g = make_graph(["a", "b", "c"], [("a", "c")])
    d = decide(g, {}, condition=always)
    assert d == Decision(ready=["a", "b"])


def test_a_linear_chain_runs_one_step_after_the_other():
    g = make_graph(["a", "b", "c"], [("a", "b"), ("b", "c")])
    assert decide(g, {}, condition=always).ready == ["a"]
    assert decide(g, views(a="running"), condition=always) == Decision()
    assert decide(g, views(a="succeeded"), condition=always).ready == ["b"]
    assert decide(g, views(a="succeeded", b="succeeded"), condition=always).ready == ["c"]
    done = decide(g, views(a="succeeded", b="succeeded", c="succeeded"), condition=always)
    assert done == Decision(run_outcome=RunStatus.SUCCEEDED)
    assert done.finished


def test_ready_lists_only_nodes_not_started_yet():
    g = make_graph(["a", "b"], [("a", "b")])
    assert decide(g, views(a="succeeded", b="pending"), condition=always).ready == ["b"]
    for status in ("running", "waiting"):
        assert decide(g, views(a="succeeded", b=status), condition=always).ready == []


def test_a_fan_out_makes_every_branch_ready_together():
    g = make_graph(["a", "b", "c", "d"], [("a", "b"), ("a", "c"), ("a", "d")])
    assert decide(g, views(a="succeeded"), condition=always).ready == ["b", "c", "d"]


def test_a_join_waits_for_every_incoming_edge():
    g = make_graph(["a", "b", "j"], [("a", "j"), ("b", "j")])
    assert decide(g, views(a="succeeded", b="running"), condition=always) == Decision()
    assert decide(g, views(a="succeeded", b="waiting"), condition=always) == Decision()
    assert decide(g, views(a="succeeded", b="succeeded"), condition=always).ready == ["j"]


def test_a_join_runs_when_one_branch_was_skipped_and_one_taken():
    g = make_graph(
        ["start", "yes", "no", "join"],
        [("start", "yes", "go_yes"), ("start", "no", "go_no"), ("yes", "join"), ("no", "join")],
    )
    cond = conditions(go_yes=True, go_no=False)
    d = decide(g, views(start="succeeded"), condition=cond)
    assert d.ready == ["yes"]
    assert d.skipped == ["no"]
    d = decide(g, views(start="succeeded", yes="succeeded", no="skipped"), condition=cond)
    assert d.ready == ["join"]


def test_a_false_condition_skips_the_target_and_everything_only_it_feeds():
    g = make_graph(
        ["a", "b", "c", "d", "e"],
        [("a", "b", "go"), ("b", "c"), ("c", "d"), ("a", "e")],
    )
    d = decide(g, views(a="succeeded"), condition=conditions(go=False))
    assert d.skipped == ["b", "c", "d"]
    assert d.ready == ["e"]
    assert d.run_outcome is None


def test_a_skip_cascade_stops_at_a_node_that_something_else_feeds():
    g = make_graph(["a", "b", "c", "d"], [("a", "b", "go"), ("b", "d"), ("a", "c"), ("c", "d")])
    d = decide(g, views(a="succeeded"), condition=conditions(go=False))
    assert d.skipped == ["b"]
    assert d.ready == ["c"]
    d = decide(g, views(a="succeeded", b="skipped", c="succeeded"), condition=always)
    assert d.ready == ["d"]


def test_a_run_whose_last_nodes_are_skipped_succeeds_in_the_same_call():
    g = make_graph(["a", "b", "c"], [("a", "b", "go"), ("b", "c")])
    d = decide(g, views(a="succeeded"), condition=conditions(go=False))
    assert d == Decision(skipped=["b", "c"], run_outcome=RunStatus.SUCCEEDED)


def test_conditions_are_evaluated_only_for_edges_from_sources_that_passed():
    g = make_graph(["a", "b", "c"], [("a", "c", "x"), ("b", "c", "y")])
    seen = []

    def cond(edge, view):
        seen.append((edge["id"], view.status))
        return False

    d = decide(g, views(a="succeeded", b="running"), condition=cond)
    assert seen == []  # not every incoming edge is resolved yet
    d = decide(g, views(a="succeeded", b="failed"), condition=cond)
    assert seen == []  # b failed with on_error fail: the run fails, no routing
    assert d.run_outcome is RunStatus.FAILED

    g = make_graph(["a", "b", "c"], [("a", "c", "x"), ("b", "c", "y")], on_error={"b": "continue"})
    d = decide(g, views(a="skipped", b="failed"), condition=cond)
    assert seen == [("b->c", S.FAILED)]
    assert d.skipped == ["c"]


def test_on_error_continue_takes_the_outgoing_edges_of_a_failed_step():
    g = make_graph(["a", "b"], [("a", "b")], on_error={"a": "continue"})
    d = decide(g, views(a="failed"), condition=always)
    assert d.ready == ["b"]
    d = decide(g, views(a="failed", b="succeeded"), condition=always)
    assert d.run_outcome is RunStatus.SUCCEEDED


def test_the_views_on_error_overrides_the_definition():
    g = make_graph(["a", "b"], [("a", "b")])
    d = decide(g, {"a": StepView(S.FAILED, on_error="continue")}, condition=always)
    assert d.ready == ["b"]
    g = make_graph(["a", "b"], [("a", "b")], on_error={"a": "continue"})
    d = decide(g, {"a": StepView(S.FAILED, on_error="fail")}, condition=always)
    assert d.run_outcome is RunStatus.FAILED


def test_a_failed_step_fails_the_run_after_running_siblings_finish():
    g = make_graph(["a", "b", "c", "after_a", "after_b"], [("a", "after_a"), ("b", "after_b")])
    d = decide(g, views(a="failed", b="running", c="waiting"), condition=always)
    assert d == Decision()  # nothing new starts, pending ones wait for the end
    d = decide(g, views(a="failed", b="succeeded", c="waiting"), condition=always)
    assert d == Decision()  # b succeeded, but after_b does not start
    d = decide(g, views(a="failed", b="succeeded", c="succeeded"), condition=always)
    assert d == Decision(
        cancelled=["after_a", "after_b"], run_outcome=RunStatus.FAILED, failed_step="a"
    )


def test_the_failed_step_reported_is_the_first_in_topological_order():
    g = make_graph(["late", "early", "x"], [("early", "late"), ("x", "late")])
    d = decide(g, views(early="failed", x="failed"), condition=always)
    assert d.failed_step == "early"
    assert d.cancelled == ["late"]


def test_cancel_cancels_pending_steps_at_once_and_ends_when_nothing_runs():
    g = make_graph(["a", "b", "c", "d"], [("a", "c"), ("b", "d")])
    d = decide(g, views(a="running", b="succeeded", d="pending"), condition=always, cancelling=True)
    assert d == Decision(cancelled=["c", "d"])
    d = decide(
        g,
        views(a="succeeded", b="succeeded", c="cancelled", d="cancelled"),
        condition=always,
        cancelling=True,
    )
    assert d == Decision(run_outcome=RunStatus.CANCELLED)


def test_a_waiting_step_holds_a_cancelled_run_open():
    g = make_graph(["gate"])
    d = decide(g, views(gate="waiting"), condition=always, cancelling=True)
    assert d == Decision()


def test_cancel_before_anything_started_ends_the_run_at_once():
    g = make_graph(["a", "b"], [("a", "b")])
    d = decide(g, {}, condition=always, cancelling=True)
    assert d == Decision(cancelled=["a", "b"], run_outcome=RunStatus.CANCELLED)


def test_the_same_state_gives_the_same_decision():
    g = make_graph(["a", "b", "c"], [("a", "b", "go"), ("a", "c")])
    state = views(a="succeeded")
    cond = conditions(go=True)
    assert decide(g, state, condition=cond) == decide(g, state, condition=cond)


def test_step_views_accept_plain_strings():
    assert StepView("succeeded").status is S.SUCCEEDED
    with pytest.raises(ValueError):
        StepView("exploded")


def test_a_long_chain_simulated_to_the_end_is_quick():
    n = 200
    ids = [f"n{i}" for i in range(n)]
    g = make_graph(ids, list(itertools.pairwise(ids)))
    steps: dict[str, StepView] = {}
    started = time.perf_counter()
    for _ in range(n):
        d = decide(g, steps, condition=always)
        assert len(d.ready) == 1
        steps[d.ready[0]] = StepView(S.SUCCEEDED)
    d = decide(g, steps, condition=always)
    assert d.run_outcome is RunStatus.SUCCEEDED
    assert time.perf_counter() - started < 1.0
