"""Property tests: random DAGs simulated to the end by calling `decide` after every change.

The simulation plays the service layer: it starts what is ready, marks what is skipped or
cancelled, and completes one running (or waiting) step at a time, in an order hypothesis picks.
Conditions, failures, `on_error` and an occasional cancel are drawn too, and half the runs
start at a random entry node (a trigger's `node_id`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import event, given, settings
from hypothesis import strategies as st

from runs.engine import (
    STEP_ACTIVE,
    STEP_TERMINAL,
    Graph,
    RunStatus,
    StepStatus,
    StepView,
    check_step_transition,
    decide,
)

S = StepStatus


@dataclass
class Scenario:
    graph: Graph
    condition_holds: dict[str, bool]  # edge id -> value, for edges with a condition
    fails: dict[str, bool]
    on_error: dict[str, str]
    waits: dict[str, bool]  # goes through `waiting` before it finishes
    cancel_after: int | None  # completions before a cancel is requested
    edges: list[dict] = field(default_factory=list)
    entry: str | None = None
    # The entry and what is downstream of it, computed here, not by the scheduler; None
    # without an entry (every node may run).
    reach: frozenset[str] | None = None

    def outside(self, node: str) -> bool:
        """Upstream of the entry or unrelated to it: it never runs."""
        return self.reach is not None and node not in self.reach


def downstream(entry: str, edges: list[dict]) -> frozenset[str]:
    found = {entry}
    changed = True
    while changed:
        changed = False
        for edge in edges:
            if edge["source"] in found and edge["target"] not in found:
                found.add(edge["target"])
                changed = True
    return frozenset(found)


@st.composite
def scenarios(draw) -> Scenario:
    n = draw(st.integers(1, 30))
    ids = [f"n{i}" for i in range(n)]
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))
    edges = []
    condition_holds = {}
    for k, (a, b) in enumerate(pairs):
        if a == b:
            continue
        src, dst = ids[min(a, b)], ids[max(a, b)]
        eid = f"e{k}"
        conditional = draw(st.booleans())
        edges.append(
            {"id": eid, "source": src, "target": dst, "condition": eid if conditional else None}
        )
        if conditional:
            condition_holds[eid] = draw(st.booleans())
    # Definition order is a permutation: topological order must not rely on it.
    definition_order = draw(st.permutations(ids))
    on_error = {i: draw(st.sampled_from(["fail", "continue"])) for i in ids}
    fails = {i: draw(st.integers(0, 9)) == 0 for i in ids}
    waits = {i: draw(st.integers(0, 4)) == 0 for i in ids}
    cancel_after = draw(st.none() | st.integers(0, 40))
    # Random graphs are sparse, so many nodes are roots: draw inner nodes (with a predecessor,
    # whose incoming edges the entry ignores) as often as any node.
    inner = sorted({e["target"] for e in edges})
    entry = draw(st.none() | st.sampled_from(ids) | st.sampled_from(inner or ids))
    defn = {
        "nodes": [
            {
                "id": i,
                "type": "transform",
                "name": i,
                "config": {},
                "retry": {"max_attempts": 1, "backoff_s": 1.0, "backoff_factor": 2.0},
                "timeout_s": None,
                "on_error": on_error[i],
                "output_key": None,
            }
            for i in definition_order
        ],
        "edges": edges,
        "output": None,
        "output_type": "markdown",
        "inputs": [],
    }
    return Scenario(
        graph=Graph.from_definition(defn),
        condition_holds=condition_holds,
        fails=fails,
        on_error=on_error,
        waits=waits,
        cancel_after=cancel_after,
        edges=edges,
        entry=entry,
        reach=None if entry is None else downstream(entry, edges),
    )


def passes(sc: Scenario, node: str, status: StepStatus) -> bool:
    return status is S.SUCCEEDED or (status is S.FAILED and sc.on_error[node] == "continue")


def taken(sc: Scenario, edge: dict, status: dict[str, StepStatus]) -> bool:
    src = edge["source"]
    if src not in status or not passes(sc, src, status[src]):
        return False
    return edge["condition"] is None or sc.condition_holds[edge["condition"]]


@settings(max_examples=200, deadline=None)
@given(sc=scenarios(), data=st.data())
def test_random_runs_end_with_every_node_in_one_terminal_state(sc: Scenario, data):
    g = sc.graph
    steps: dict[str, StepView] = {}
    status: dict[str, StepStatus] = {}
    decided: set[str] = set()  # reported as ready, skipped or cancelled: at most once each
    cancelling = False
    completions = 0

    def set_status(node: str, new: StepStatus) -> None:
        check_step_transition(status.get(node, S.PENDING), new)
        status[node] = new
        steps[node] = StepView(new)

    def condition(edge, view):
        # Only for conditional edges whose source ended in a way that lets edges be taken.
        assert edge["condition"] is not None
        assert view.status is status[edge["source"]]
        assert passes(sc, edge["source"], view.status)
        return sc.condition_holds[edge["condition"]]

    outcome = None
    failed_step = None
    started: set[str] = set()
    for call in range(10 * len(g.order) + 10):
        d = decide(g, steps, condition=condition, cancelling=cancelling, entry=sc.entry)
        assert d.ready == sorted(d.ready, key=g.position.__getitem__)
        # Skips of this decision come first: they are terminal for the nodes it readies.
        for node in d.skipped:
            assert node not in decided, f"{node} reported twice"
            decided.add(node)
            assert node != sc.entry, "the entry is never skipped"
            if sc.outside(node):
                # Skipped at once, whatever its sources: they never run either.
                assert call == 0, f"{node} outside the entry skipped late"
            else:
                incoming = g.incoming[node]
                assert incoming
                assert all(status.get(e["source"]) in STEP_TERMINAL for e in incoming)
                assert not any(taken(sc, e, status) for e in incoming)
            set_status(node, S.SKIPPED)
        for node in d.ready:
            assert node not in decided, f"{node} reported twice"
            decided.add(node)
            assert not sc.outside(node), f"{node} is not downstream of the entry {sc.entry}"
            if node == sc.entry:
                # Its incoming edges are ignored: it runs at once.
                assert call == 0
            else:
                incoming = g.incoming[node]
                assert all(status.get(e["source"]) in STEP_TERMINAL for e in incoming)
                assert not incoming or any(taken(sc, e, status) for e in incoming)
            assert not cancelling
            set_status(node, S.RUNNING)
            started.add(node)
        for node in d.cancelled:
            assert node not in decided, f"{node} reported twice"
            decided.add(node)
            set_status(node, S.CANCELLED)
        if d.run_outcome is not None:
            outcome, failed_step = d.run_outcome, d.failed_step
            break

        active = [n for n in g.order if status.get(n) in STEP_ACTIVE]
        assert active or d.ready or d.skipped or d.cancelled, "stalled with nothing running"
        if not active:
            continue
        node = data.draw(st.sampled_from(active))
        if status[node] is S.RUNNING and sc.waits[node]:
            set_status(node, S.WAITING)
        else:
            set_status(node, S.FAILED if sc.fails[node] else S.SUCCEEDED)
            completions += 1
        if sc.cancel_after is not None and completions >= sc.cancel_after:
            cancelling = True
    else:
        raise AssertionError("the run did not terminate")

    event(f"outcome: {outcome}")
    event(f"nodes: {'1' if len(g.order) == 1 else '2-10' if len(g.order) <= 10 else '11-30'}")
    if sc.entry is not None:
        event(f"entry: {'a root' if not g.incoming[sc.entry] else 'an inner node'}")
    # Every node ends in exactly one terminal state.
    assert set(status) == set(g.order)
    assert all(s in STEP_TERMINAL for s in status.values())
    # Nothing upstream of the entry or unrelated to it runs: each is recorded skipped.
    if sc.reach is not None:
        assert started <= sc.reach
        assert all(status[n] is S.SKIPPED for n in g.order if n not in sc.reach)
    # Asking again about a finished run gives the same answer and nothing to do.
    again = decide(g, steps, condition=condition, cancelling=cancelling, entry=sc.entry)
    assert (again.ready, again.skipped, again.cancelled) == ([], [], [])
    assert again.run_outcome is outcome

    run_failures = [n for n in g.order if status[n] is S.FAILED and sc.on_error[n] == "fail"]
    if cancelling:
        assert outcome is RunStatus.CANCELLED
        assert failed_step is None
    elif run_failures:
        assert outcome is RunStatus.FAILED
        assert failed_step == run_failures[0]
    else:
        assert outcome is RunStatus.SUCCEEDED
        assert failed_step is None
        assert S.CANCELLED not in status.values()
        # Nothing stopped the run: the result matches the semantics computed directly.
        for node in g.order:
            incoming = g.incoming[node]
            if sc.outside(node):
                runs = False
            elif node == sc.entry:
                runs = True
            else:
                runs = not incoming or any(taken(sc, e, status) for e in incoming)
            assert (status[node] is not S.SKIPPED) == runs, node


@settings(max_examples=100, deadline=None)
@given(sc=scenarios())
def test_a_cancel_at_the_start_cancels_everything_at_once(sc: Scenario):
    d = decide(sc.graph, {}, condition=lambda e, v: True, cancelling=True, entry=sc.entry)
    assert d.ready == [] and d.skipped == []
    assert d.cancelled == list(sc.graph.order)
    assert d.run_outcome is RunStatus.CANCELLED


@settings(max_examples=100, deadline=None)
@given(sc=scenarios())
def test_the_topological_order_puts_every_source_before_its_targets(sc: Scenario):
    g = sc.graph
    assert sorted(g.order) == sorted(g.node_ids)
    for edge in sc.edges:
        assert g.position[edge["source"]] < g.position[edge["target"]]


@settings(max_examples=100, deadline=None)
@given(sc=scenarios())
def test_the_reach_of_an_entry_is_the_entry_and_everything_downstream(sc: Scenario):
    for node in sc.graph.order:
        assert sc.graph.reach(node) == downstream(node, sc.edges)
