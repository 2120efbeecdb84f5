"""The scheduler: given a graph and the latest attempt of every step, what happens next.

`decide` is a pure function of plain data. The service layer locks the run row, builds a
`StepView` per node from its rows, calls `decide`, and persists the `Decision` (creates and
enqueues the ready steps, marks the skipped and cancelled ones, ends the run). Because it is
pure and stateless it is safe to call after every state change, and calling it twice on the
same state gives the same answer.

Semantics (API.md, "The definition"):

- An edge is *resolved* when its source is terminal. It is *taken* when its source succeeded
  (or failed with `on_error: continue`) and its condition is None or holds.
- A node runs when every incoming edge is resolved and at least one was taken; nodes with no
  incoming edge run at once. A node whose incoming edges are all resolved and none taken is
  skipped, and the skip cascades (within the same call) to the nodes only it feeds.
- A failed step with `on_error: fail` stops the run: nothing new starts, running and waiting
  steps finish, then the pending ones are cancelled and the run fails.
- A cancel starts nothing new and cancels pending steps at once; the run ends cancelled when
  no step is running or waiting any more.
- A run may start at an *entry* node (a trigger's `node_id`): the entry runs at once, its
  incoming edges ignored; the nodes downstream of it are routed as above; every other node
  (upstream of the entry, or unrelated to it) is skipped at once, so its outgoing edges count
  as resolved and not taken for the joins downstream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from orchestrator.definition.graph import topological_order

from .states import STEP_ACTIVE, STEP_TERMINAL, RunStatus, StepStatus

ON_ERROR_FAIL = "fail"
ON_ERROR_CONTINUE = "continue"

Condition = Callable[[Mapping[str, Any], "StepView"], bool]


@dataclass(frozen=True, slots=True)
class StepView:
    """What the scheduler needs to know about a node's latest attempt.

    `on_error` is the policy that applies to this attempt's failure. None (the default) means
    "whatever the node's definition says", so a caller cannot forget it; an explicit value
    overrides it (e.g. an approval whose `on_deny` is `continue`).
    """

    status: StepStatus
    on_error: str | None = None

    def __post_init__(self) -> None:
        # Accept plain strings from the database; compare against the enum everywhere else.
        object.__setattr__(self, "status", StepStatus(self.status))


# One view per status, shared: the scheduler looks at every node each time a step moves, and an
# inline chain moves a step per look, so building a view per node per look grew with its square.
_VIEWS = {status: StepView(status) for status in StepStatus}
_PENDING_VIEW = _VIEWS[StepStatus.PENDING]


def view_of(status: str) -> StepView:
    """The view of a latest attempt in `status` (a StepStatus or its stored text: a StrEnum
    member is its text's key)."""
    return _VIEWS[status]  # type: ignore[index]  # a str finds its StrEnum member


@dataclass(frozen=True)
class Graph:
    """The shape of a normalized definition, computed once per definition version.

    Ties in the topological order are broken by definition order, so the order is stable and
    reads like the definition (it is also the order of the run detail's `steps`).
    """

    node_ids: tuple[str, ...]
    nodes: Mapping[str, Mapping[str, Any]]
    incoming: Mapping[str, tuple[Mapping[str, Any], ...]]
    outgoing: Mapping[str, tuple[Mapping[str, Any], ...]]
    order: tuple[str, ...]
    position: Mapping[str, int] = field(repr=False)
    # Memo of `reach`: the graph is immutable, so an entry's reach never changes.
    _reach: dict[str, frozenset[str]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_definition(cls, defn: Mapping[str, Any]) -> Graph:
        """Build the graph; raises ValueError on a dangling edge, duplicate id or a cycle.

        The definition is expected to be validated already; the checks here only guard the
        scheduler's own assumptions so a bad input fails loudly instead of hanging a run.
        """
        nodes: dict[str, Mapping[str, Any]] = {}
        for node in defn.get("nodes") or ():
            if node["id"] in nodes:
                raise ValueError(f"duplicate node id {node['id']!r}")
            nodes[node["id"]] = node
        node_ids = tuple(nodes)
        incoming: dict[str, list[Mapping[str, Any]]] = {n: [] for n in node_ids}
        outgoing: dict[str, list[Mapping[str, Any]]] = {n: [] for n in node_ids}
        for edge in defn.get("edges") or ():
            src, dst = edge["source"], edge["target"]
            if src not in nodes or dst not in nodes:
                raise ValueError(f"edge {edge.get('id')!r} names an unknown node")
            outgoing[src].append(edge)
            incoming[dst].append(edge)

        order = topological_order(
            node_ids, [(edge["source"], edge["target"]) for edge in defn.get("edges") or ()]
        )
        if len(order) != len(node_ids):
            raise ValueError("the graph has a cycle")

        return cls(
            node_ids=node_ids,
            nodes=MappingProxyType(nodes),
            incoming=MappingProxyType({n: tuple(e) for n, e in incoming.items()}),
            outgoing=MappingProxyType({n: tuple(e) for n, e in outgoing.items()}),
            order=tuple(order),
            position=MappingProxyType({n: i for i, n in enumerate(order)}),
        )

    def reach(self, entry: str) -> frozenset[str]:
        """The entry node and every node downstream of it; raises ValueError for an unknown node."""
        found = self._reach.get(entry)
        if found is None:
            if entry not in self.nodes:
                raise ValueError(f"unknown entry node {entry!r}")
            seen = {entry}
            stack = [entry]
            while stack:
                for edge in self.outgoing[stack.pop()]:
                    target = edge["target"]
                    if target not in seen:
                        seen.add(target)
                        stack.append(target)
            found = self._reach[entry] = frozenset(seen)
        return found

    def on_error(self, node_id: str, view: StepView) -> str:
        """The failure policy for this attempt: the view's, else the node's, else fail."""
        if view.on_error is not None:
            return view.on_error
        return self.nodes[node_id].get("on_error") or ON_ERROR_FAIL

    def fails_run(self, node_id: str, view: StepView) -> bool:
        """Whether this view is a failure that stops the run."""
        return view.status is StepStatus.FAILED and self.on_error(node_id, view) != (
            ON_ERROR_CONTINUE
        )


@dataclass(frozen=True)
class Decision:
    """What to do now. Every list is in topological order.

    - `ready`: nodes to start now (their latest attempt is pending or does not exist yet).
      This is level-triggered: a node the service already created as pending but that no
      worker has claimed yet is listed again, so a lost enqueue heals itself; the claim being
      a conditional `pending -> running` update makes a second enqueue harmless.
    - `skipped`: nodes to mark skipped now (no incoming edge was taken, transitively).
    - `cancelled`: pending nodes to mark cancelled now (the run is cancelling, or has failed
      and nothing runs any more).
    - `run_outcome`: set when the run is over (succeeded, failed or cancelled).
    - `failed_step`: with a failed outcome, the first failing step in topological order.
    """

    ready: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    run_outcome: RunStatus | None = None
    failed_step: str | None = None

    @property
    def finished(self) -> bool:
        """True when the run ends with this decision."""
        return self.run_outcome is not None


def decide(
    graph: Graph,
    steps: Mapping[str, StepView],
    *,
    condition: Condition,
    cancelling: bool = False,
    entry: str | None = None,
) -> Decision:
    """Decide what is ready, skipped, cancelled and whether the run is over.

    `steps` maps node id to its latest attempt; a missing node has not been created yet and
    counts as pending. `condition(edge, source_view)` is called only for edges that carry a
    condition, whose source ended succeeded (or failed with `on_error: continue`) and whose
    target is still pending with every incoming edge resolved; it may short-circuit (a node
    with one taken edge runs whatever the others say). Exceptions from it propagate: how a
    broken condition is reported is the caller's policy.

    `entry` starts the run at that node (see the module docstring); None, the default, starts
    at the nodes with no incoming edge. An unknown entry raises ValueError.

    One pass in topological order, O(nodes + edges): a node's sources are always decided
    before it, so a skip cascades down the whole graph in a single call.
    """
    active = False
    failed_step: str | None = None
    any_cancelled = False
    for n in graph.order:
        view = steps.get(n)
        if view is None:
            continue
        if view.status in STEP_ACTIVE:
            active = True
        elif view.status is StepStatus.CANCELLED:
            any_cancelled = True
        elif failed_step is None and graph.fails_run(n, view):
            failed_step = n

    ready: list[str] = []
    skipped: list[str] = []
    cancelled: list[str] = []

    if cancelling or failed_step is not None:
        # Stopping: no routing any more. Pending nodes are cancelled at once on a cancel, and
        # on a failure once the steps in progress have finished (so the failure is final).
        if cancelling or not active:
            cancelled = [
                n for n in graph.order if steps.get(n, _PENDING_VIEW).status is StepStatus.PENDING
            ]
        if active:
            return Decision(cancelled=cancelled)
        if cancelling:
            return Decision(cancelled=cancelled, run_outcome=RunStatus.CANCELLED)
        return Decision(cancelled=cancelled, run_outcome=RunStatus.FAILED, failed_step=failed_step)

    reach = None if entry is None else graph.reach(entry)
    # Statuses as of this call: newly skipped nodes count as terminal for the nodes after them.
    status: dict[str, StepStatus] = {}
    all_terminal = True
    for n in graph.order:
        view = steps.get(n, _PENDING_VIEW)
        if view.status is not StepStatus.PENDING:
            status[n] = view.status
            if view.status not in STEP_TERMINAL:
                all_terminal = False
            continue
        if reach is None or (n != entry and n in reach):
            verdict = _route(graph, n, steps, status, condition)
        else:  # the entry runs at once; what it does not feed never runs
            verdict = n == entry
        if verdict is None:
            status[n] = StepStatus.PENDING
            all_terminal = False
        elif verdict:
            status[n] = StepStatus.PENDING
            ready.append(n)
            all_terminal = False
        else:
            status[n] = StepStatus.SKIPPED
            skipped.append(n)

    outcome: RunStatus | None = None
    if all_terminal:
        outcome = RunStatus.CANCELLED if any_cancelled else RunStatus.SUCCEEDED
    return Decision(ready=ready, skipped=skipped, run_outcome=outcome)


def _route(
    graph: Graph,
    node_id: str,
    steps: Mapping[str, StepView],
    status: Mapping[str, StepStatus],
    condition: Condition,
) -> bool | None:
    """None: not every incoming edge is resolved yet; True: run it; False: skip it."""
    edges = graph.incoming[node_id]
    for edge in edges:
        if status[edge["source"]] not in STEP_TERMINAL:
            return None
    if not edges:
        return True
    # Unconditional edges first: they need no evaluation and may settle the answer.
    conditional = []
    for edge in edges:
        src = edge["source"]
        if not _source_passes(graph, src, steps, status):
            continue
        if edge.get("condition") is None:
            return True
        conditional.append(edge)
    return any(condition(edge, steps[edge["source"]]) for edge in conditional)


def _source_passes(
    graph: Graph,
    src: str,
    steps: Mapping[str, StepView],
    status: Mapping[str, StepStatus],
) -> bool:
    """Whether the source ended in a way that lets its outgoing edges be taken."""
    st = status[src]
    if st is StepStatus.SUCCEEDED:
        return True
    if st is StepStatus.FAILED:
        return graph.on_error(src, steps[src]) == ON_ERROR_CONTINUE
    return False
