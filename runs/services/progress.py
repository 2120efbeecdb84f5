"""Moving a run forward: the one place that changes run and step state.

A `Progress` is one state change of one run, made inside a transaction that holds the run's row
lock: it records what happened to a step, asks the pure scheduler what is now ready, skipped or
cancelled, starts those steps (transforms run inline, without a broker hop), ends the run when
the scheduler says so, and writes the events of all of it in one batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.types import Pk
from orchestrator.definition import NODE_TYPES, TemplateError, evaluate, render
from orchestrator.definition.nodes import types_running_on, waits_for_people
from runs.engine import (
    RUN_TERMINAL,
    STEP_TERMINAL,
    ErrorCode,
    RetryPolicy,
    RunStatus,
    StepStatus,
    apply_output_key,
    backoff_seconds,
    check_payload_schema,
    decide,
    default_run_output,
    should_retry,
    view_of,
)
from runs.engine.nodes import INLINE_EXECUTORS
from runs.models import Run, StepRun
from runs.services import dispatch, tracing
from runs.services.context import UNREAD_BY_SCHEDULER, latest_attempts, run_context
from runs.services.events import EventLog
from runs.services.graphs import definition_of, graph_of
from runs.services.subflows import start_subflow
from runs.services.transitions import claim_step, move_run, move_step, new_step
from runs.services.waiting import ask_for_budget, cancel_pending, start_human_step

# Run-level failure codes a step's error may carry up to the run.
RUN_CODES = frozenset(
    {
        *ErrorCode.TREE_LIMITS,
        ErrorCode.APPROVAL_DENIED,
        ErrorCode.APPROVAL_EXPIRED,
        ErrorCode.TIMEOUT,
        ErrorCode.MODEL_UNPRICED,
        ErrorCode.COST_LIMIT_EXCEEDED,
    }
)
EVENT_OUTPUT_LIMIT = 16_384
# The metrics of a step's end that are spending (`Progress.spend`), not facts to set.
USAGE = ("cost_usd", "tokens_input", "tokens_output", "unpriced")
RUN_FIELDS = [
    "status",
    "output",
    "output_type",
    "shared_state",
    "error",
    "cost_usd",
    "unpriced",
    "tokens_input",
    "tokens_output",
    "steps_completed",
    "steps_total",
    "cancel_requested",
    "last_seq",
    "deadline_at",
    "budget_hold",
    "credit_limit",
    "started_at",
    "finished_at",
]


def preview(value: Any) -> Any:
    """Outputs go into events in full unless they are large; the step row always has all of it."""
    text = json.dumps(value, default=str)
    if len(text) <= EVENT_OUTPUT_LIMIT:
        return value
    return {"truncated": True, "preview": text[:EVENT_OUTPUT_LIMIT]}


def typed_output(value: Any, output_type: str) -> Any:
    if output_type == "json":
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def asks_people(step: StepRun) -> bool:
    """A step a person must answer: an approval or a form, or a waiting worker step (an agent
    whose tool call waits for approval; a delay waits for its timer, which is no worker step),
    unless that agent waits for its orchestration tool calls' child runs, which run on their own
    (as a subflow step's child)."""
    if waits_for_people(step.node_type):
        return True
    if step.status != StepStatus.WAITING or step.node_type not in types_running_on("worker"):
        return False
    return step.child_run_id is None or not (
        Run.objects.filter(tool_call_step=step).exclude(status__in=RUN_TERMINAL).exists()
    )


def lease_for(node: Mapping[str, Any]) -> timedelta:
    timeout = node.get("timeout_s") or settings.STEP_DEFAULT_LEASE_S
    return timedelta(seconds=float(timeout) + settings.STEP_LEASE_GRACE_S)


class Progress:
    """Holds the locked run, the latest attempt of each node and the events being written."""

    def __init__(self, run: Run, reuse: Mapping[str, StepRun] | None = None) -> None:
        self.run = run
        self.log = EventLog(run)
        # A run that was never started has no steps yet, unless a replay copied some in.
        fresh = run.status == RunStatus.QUEUED and not run.replay_from_step
        self.steps: dict[str, StepRun] = (
            {} if fresh else latest_attempts(run, skip=UNREAD_BY_SCHEDULER, reuse=reuse)
        )
        self.definition = definition_of(run)
        self.graph = graph_of(run)
        self.now = timezone.now()
        self.unsaved: dict[UUID, StepRun] = {}
        # What this change ends is told apart from what had ended before: for the traces.
        self.ended_before = run.status in RUN_TERMINAL
        self.loaded = {step.pk: step.status for step in self.steps.values()}
        self.stored: dict[UUID, StepRun] = {}
        # Set by a worker that records a step's outcome and is then free: the first worker step
        # this change starts is claimed for it (`taken`) instead of sent to the broker.
        self.worker_free = False
        self.taken: StepRun | None = None
        # The input of `taken`, when this change inserted it: rendered as the change ends.
        self.taken_input: Any = None

    @classmethod
    def lock(cls, run_id: Pk, reuse: Mapping[str, StepRun] | None = None) -> Progress:
        """Must be called inside transaction.atomic(): the lock lasts until commit. `reuse`:
        the steps an earlier transaction of this task read and left as they were."""
        return cls(
            Run.objects.select_for_update(of=("self",))
            .select_related("orchestration_version")
            .defer("orchestration_version__definition", "orchestration_version__markdown")
            .get(pk=run_id),
            reuse,
        )

    @property
    def _settings(self) -> dict[str, Any]:
        """The settings of the version the run pinned."""
        return self.run.orchestration_version.settings or {}

    def store(self, step: StepRun) -> None:
        """Save a changed step now, unless it is new in this change (then `save` inserts it)."""
        if step.pk not in self.unsaved:
            step.save()
            self.stored[step.pk] = step

    def flush_steps(self) -> None:
        if self.unsaved:
            StepRun.objects.bulk_create(self.unsaved.values())
            self.unsaved = {}

    # --- recording what happened to a step ---------------------------------------------------

    def node(self, node_id: str) -> Mapping[str, Any]:
        return self.graph.nodes[node_id]

    def context(self) -> dict[str, Any]:
        return run_context(self.run, self.steps)

    def _route(self, node_id: str, output: Any, *, succeeded: bool) -> tuple[list[str], str | None]:
        """Which outgoing edges are taken, decided once, when the step ends.

        Deciding here (not each time the scheduler looks) means a later change of shared state
        cannot change a branch that was already chosen, and a broken condition fails the step
        that produced the output, where the user will look for it.
        """
        taken: list[str] = []
        context = None
        for edge in self.graph.outgoing[node_id]:
            if succeeded:
                problem = check_payload_schema(edge.get("payload_schema"), output)
                if problem:
                    return [], f"edge {edge['id']} to '{edge['target']}': {problem}"
            if edge.get("condition") is None:
                taken.append(edge["id"])
                continue
            if context is None:
                context = {**self.context(), "output": output}
            try:
                holds = evaluate(edge["condition"], context)
            except TemplateError as exc:
                return [], f"condition of edge {edge['id']} to '{edge['target']}' failed: {exc}"
            if holds:
                taken.append(edge["id"])
        return taken, None

    def succeed(self, step: StepRun, output: Any, **metrics: Any) -> None:
        taken, problem = self._route(step.node_id, output, succeeded=True)
        if problem:
            step.output = output
            # What the step spent is spent although its output cannot go on.
            self.fail(step, problem, retryable=False, **metrics)
            return
        step.output = output
        step.edges_taken = taken
        usage = self.report(step, metrics)
        self.steps[step.node_id] = step
        self.run.shared_state = apply_output_key(
            self.run.shared_state, self.node(step.node_id), output
        )
        self.spend(step, **usage)
        move_step(
            step,
            StepStatus.SUCCEEDED,
            self.now,
            self.log,
            "step_complete",
            output=preview(output),
            attempt=step.attempt,
            # Measured to this change's time: the row's own figure needs the finished_at that
            # the move below sets.
            duration_ms=None
            if step.started_at is None
            else int((self.now - step.started_at).total_seconds() * 1000),
            tokens={"input": step.tokens_input, "output": step.tokens_output},
            cost_usd=None if step.cost_usd is None else float(step.cost_usd),
            unpriced=step.unpriced,
            model=step.model,
            turns=step.turns,
            tool_calls=step.tool_calls,
        )
        self.store(step)

    def fail(
        self,
        step: StepRun,
        message: str,
        *,
        retryable: bool,
        code: str = ErrorCode.STEP_FAILED,
        details: dict[str, Any] | None = None,
        **metrics: Any,
    ) -> None:
        node = self.node(step.node_id)
        step.error = {"code": code, "message": message, **(details or {})}
        usage = self.report(step, metrics)
        policy = RetryPolicy.from_node(node)
        if retryable and should_retry(policy, step.attempt) and not self.run.cancel_requested:
            self.spend(step, **usage)
            delay = backoff_seconds(policy, step.attempt)
            move_step(
                step,
                StepStatus.FAILED,
                self.now,
                self.log,
                "step_retry",
                attempt=step.attempt,
                next_attempt=step.attempt + 1,
                delay_s=delay,
                error=message,
            )
            self.store(step)
            retry = self.new_step(
                step.node_id,
                StepStatus.PENDING,
                attempt=step.attempt + 1,
                wake_at=self.now + timedelta(seconds=delay),
            )
            dispatch.enqueue_step(retry.pk, countdown=delay)
            return
        self.spend(step, **usage)
        move_step(
            step,
            StepStatus.FAILED,
            self.now,
            self.log,
            "step_failed",
            error=message,
            code=code,
            attempt=step.attempt,
        )
        if node["on_error"] == "continue":
            step.edges_taken, _ = self._route(step.node_id, None, succeeded=False)
        self.steps[step.node_id] = step
        self.store(step)

    @staticmethod
    def report(step: StepRun, metrics: dict[str, Any]) -> dict[str, Any]:
        """Set what a step reports as it ends or waits (model, turns, ...) on its row; returns
        its usage (`USAGE`): what this attempt spent besides what the row holds, for `spend`."""
        for key, value in metrics.items():
            if key not in USAGE:
                setattr(step, key, value)
        return {key: value for key, value in metrics.items() if key in USAGE}

    def spend(
        self,
        step: StepRun,
        *,
        cost_usd: Decimal | float | None = 0,
        tokens_input: int = 0,
        tokens_output: int = 0,
        unpriced: bool = False,
    ) -> bool:
        """The one way cost reaches a run: what was spent for `step` (its own model calls, a
        subflow's child run, the child runs of an agent's orchestration tool calls) is added to
        the step's row and to the run's totals, each once, and the run is held to its
        credit_limit: over it, the run stops with cost_limit_exceeded, or under
        `budget_action: approve` it holds and asks for more budget.

        `cost_usd` None is a cost nobody could price: the step's cost is unknown then (null),
        and the run's stays the sum of what is known, `unpriced` saying it is not all of it. A
        child run's `unpriced` (some of its cost unknown, its `cost_usd` the rest) marks the run
        only, as the child's own total does. True when this spending stopped the run."""
        run = self.run
        if cost_usd is None:
            step.cost_usd = None
            run.unpriced = True
        else:
            if step.cost_usd is not None:
                # A fresh row holds 0: the common case keeps the figure as it was given.
                step.cost_usd = (
                    Decimal(step.cost_usd) + Decimal(cost_usd) if step.cost_usd else cost_usd
                )
            run.cost_usd += Decimal(cost_usd)
        run.unpriced = run.unpriced or unpriced
        step.tokens_input += tokens_input
        step.tokens_output += tokens_output
        run.tokens_input += tokens_input
        run.tokens_output += tokens_output
        limit = run.credit_limit
        if limit is None or run.cost_usd <= limit or run.error is not None or run.budget_hold:
            return False
        if self._settings.get("budget_action") == "approve":
            ask_for_budget(self, limit)
            return False
        run.error = {
            "code": ErrorCode.COST_LIMIT_EXCEEDED,
            "detail": f"Cost limit exceeded: ${run.cost_usd:.2f} > max ${limit:.2f}",
            "step_id": step.node_id,
        }
        run.cancel_requested = True
        return True

    def new_step(self, node_id: str, status: StepStatus, **fields: Any) -> StepRun:
        """A new attempt row, written with the others in one insert when the change is saved
        (a chain of transforms then costs one insert, not an insert and an update per step)."""
        step = new_step(self.run, node_id, self.node(node_id)["type"], status, self.now, **fields)
        self.unsaved[step.pk] = step
        self.steps[node_id] = step
        return step

    # --- deciding and starting what comes next ------------------------------------------------

    def begin(self) -> None:
        """Start a queued run, unless its orchestration already runs as many as it may."""
        limit = self._settings.get("max_concurrent_runs")
        if limit:
            running = Run.objects.filter(
                orchestration_id=self.run.orchestration_id,
                status__in=[RunStatus.RUNNING, RunStatus.PAUSED],
            ).count()
            if running >= limit:
                return
        timeout = self._settings.get("run_timeout_s")
        if timeout:
            self.run.deadline_at = self.now + timedelta(seconds=timeout)
        move_run(
            self.run,
            RunStatus.RUNNING,
            self.now,
            self.log,
            "run_started",
            version=self.run.version,
            input=self.run.input,
        )
        self.advance()

    def advance(self) -> None:
        entry = self.run.entry_step or None
        while True:
            decision = decide(
                self.graph,
                {node_id: view_of(step.status) for node_id, step in self.steps.items()},
                condition=lambda edge, view: (
                    edge["id"] in (self.steps[edge["source"]].edges_taken or [])
                ),
                cancelling=self.run.cancel_requested,
                entry=entry,
            )
            for node_id in decision.skipped:
                self.new_step(node_id, StepStatus.SKIPPED)
                if entry is not None and node_id not in self.graph.reach(entry):
                    # Not a branch left untaken: the run started at a step this one does not feed.
                    self.log.add("step_skipped", node_id, reason="outside_entry", entry_step=entry)
                else:
                    self.log.add("step_skipped", node_id)
            for node_id in decision.cancelled:
                self._cancel_step(node_id)
            if decision.run_outcome is None and self._withdraw_questions():
                continue
            moved = False
            # Over budget and waiting for approval: finish what runs, start nothing new.
            for node_id in [] if self.run.budget_hold else decision.ready:
                if node_id not in self.steps:
                    moved |= self.start_node(node_id)
            if decision.run_outcome is not None:
                self.finish(decision.run_outcome, decision.failed_step)
                return
            if not moved:
                self._settle_status()
                return

    def _withdraw_questions(self) -> bool:
        """A failed run stops asking people, as does one stopped with an error (over its credit
        limit, out of time). The scheduler lets waiting steps finish before the run ends, but
        no answer to an approval or a form can change the outcome any more, and an open gate
        would keep the run paused, not failed, until someone answered it or it timed out (a
        week by default). True when it withdrew some, so the scheduler looks again. (A run a
        person cancelled has had its waiting steps cancelled already.)"""
        asking = [
            step
            for step in self.steps.values()
            if step.status == StepStatus.WAITING and asks_people(step)
        ]
        if not asking:
            return False
        stopped = self.run.cancel_requested and self.run.error is not None
        failing = not self.run.cancel_requested and any(
            self.graph.fails_run(node_id, view_of(step.status))
            for node_id, step in self.steps.items()
        )
        if not (stopped or failing):
            return False
        cancel_pending(self.run.pk)
        for step in asking:
            move_step(step, StepStatus.CANCELLED, self.now)
            self.store(step)
        return True

    def _cancel_step(self, node_id: str) -> None:
        step = self.steps.get(node_id)
        if step is None:
            self.new_step(node_id, StepStatus.CANCELLED)
        elif step.status in (StepStatus.PENDING, StepStatus.WAITING):
            move_step(step, StepStatus.CANCELLED, self.now)
            self.store(step)

    def start_node(self, node_id: str) -> bool:
        """Start one ready node; True when it already ended (so the scheduler should look again).
        Where the node's type runs (its registry entry's `runs_on`) decides how it starts."""
        node = self.node(node_id)
        return STARTERS[NODE_TYPES[node["type"]].runs_on](self, node)

    def _start_inline(self, node: Mapping[str, Any]) -> bool:
        """Run the type's inline executor now, without a broker hop."""
        node_id, kind = node["id"], node["type"]
        # The clock moves on within one change: a long inline chain took seconds, and its run
        # and steps said they took none.
        self.now = timezone.now()
        step = self.new_step(node_id, StepStatus.RUNNING)
        self.log.add("step_start", node_id, type=kind, name=node["name"], attempt=1)
        try:
            step.input, output = INLINE_EXECUTORS[kind](node["config"], self.context())
        except TemplateError as exc:
            self.now = timezone.now()
            self.fail(step, f"template error: {exc}", retryable=False)
            return True
        self.now = timezone.now()
        self.succeed(step, output)
        return True

    def _start_timer(self, node: Mapping[str, Any]) -> bool:
        node_id = node["id"]
        seconds = float(node["config"]["seconds"])
        wake_at = self.now + timedelta(seconds=seconds)
        step = self.new_step(
            node_id,
            StepStatus.WAITING,
            wake_at=wake_at,
            input={"seconds": seconds},
        )
        self.log.add(
            "step_start",
            node_id,
            type=node["type"],
            name=node["name"],
            attempt=1,
            wake_at=wake_at.isoformat(),
        )
        if seconds <= 0:
            self.succeed(step, None)
            return True
        dispatch.enqueue_timer(step.pk, seconds)
        return False

    def _start_child_run(self, node: Mapping[str, Any]) -> bool:
        return start_subflow(self, node)

    def _start_people(self, node: Mapping[str, Any]) -> bool:
        start_human_step(self, node)
        return False

    def _start_worker(self, node: Mapping[str, Any]) -> bool:
        if self.worker_free and self.taken is None:
            # The worker that recorded the previous step runs this one next, in the same task:
            # no broker round trip and no claim transaction of its own. Inserted running with a
            # lease, so a worker that dies on it is found by the reaper like any other.
            step = self.new_step(
                node["id"], StepStatus.RUNNING, lease_expires_at=self.now + lease_for(node)
            )
            self.log.add("step_start", node["id"], type=node["type"], name=node["name"], attempt=1)
            self.taken = step
            return False
        step = self.new_step(node["id"], StepStatus.PENDING)
        dispatch.enqueue_step(step.pk)
        return False

    def adopt_pending(self) -> None:
        """A free worker claims a pending worker step of this run (a fan-out's sibling whose
        message is still queued) in the transaction that recorded its last one, which saves
        that step a claim transaction of its own; its message then finds nothing to claim."""
        run = self.run
        if (
            not self.worker_free
            or self.taken is not None
            or run.status != RunStatus.RUNNING
            or run.cancel_requested
            or run.budget_hold
        ):
            return
        on_workers = types_running_on("worker")
        for step in self.steps.values():
            if (
                step.status != StepStatus.PENDING
                or step.node_type not in on_workers
                or step.pk in self.unsaved
                or (step.wake_at is not None and step.wake_at > self.now)
            ):
                continue
            node = self.node(step.node_id)
            lease = self.now + lease_for(node)
            # Rendered now and written with the claim: the worker neither reads the steps for
            # its context nor writes the input before it runs the node (as `_render_taken`).
            config = self._config_of(step)
            if not claim_step(StepRun.objects.filter(pk=step.pk), self.now, lease, config):
                continue
            move_step(step, StepStatus.RUNNING, self.now)
            step.lease_expires_at = lease
            if config is not None:
                step.input = self.taken_input = config
            self.log.add(
                "step_start",
                step.node_id,
                type=step.node_type,
                name=node["name"],
                attempt=step.attempt,
            )
            self.taken = step
            return

    def _settle_status(self) -> None:
        """Running while anything can move without a person; paused when only people can."""
        if self.run.status not in (RunStatus.RUNNING, RunStatus.PAUSED):
            return
        open_steps = [s for s in self.steps.values() if s.status not in STEP_TERMINAL]
        asking = [s for s in open_steps if asks_people(s)]
        held = self.run.budget_hold and not any(
            s.status in (StepStatus.RUNNING, StepStatus.PENDING) for s in open_steps
        )
        if held or (open_steps and len(asking) == len(open_steps)):
            if self.run.status != RunStatus.PAUSED:
                move_run(self.run, RunStatus.PAUSED, self.now, self.log)
        elif self.run.status == RunStatus.PAUSED:
            move_run(self.run, RunStatus.RUNNING, self.now, self.log, "run_resumed")

    def finish(self, outcome: RunStatus, failed_step: str | None) -> None:
        run = self.run
        # Only a person's step or a budget hold asks a question: most runs skip the query.
        if run.budget_hold or any(asks_people(s) for s in self.steps.values()):
            cancel_pending(run.pk)
        run.budget_hold = False
        if outcome == RunStatus.SUCCEEDED and run.error is None:
            try:
                run.output = typed_output(self._output(), self.definition["output_type"])
            except TemplateError as exc:
                run.error = {
                    "code": ErrorCode.STEP_FAILED,
                    "detail": f"The output template failed: {exc}",
                    "step_id": None,
                }
            else:
                if run.status == RunStatus.PAUSED:
                    # The answer that let the last step end resumed the run: a run succeeds
                    # from running only.
                    move_run(run, RunStatus.RUNNING, self.now, self.log)
                move_run(
                    run,
                    RunStatus.SUCCEEDED,
                    self.now,
                    self.log,
                    "orchestration_complete",
                    status=RunStatus.SUCCEEDED,
                    output=preview(run.output),
                    final_state=preview(run.shared_state),
                )
        if outcome == RunStatus.FAILED and run.error is None:
            assert failed_step is not None  # a failed outcome names the step that failed it
            error = self.steps[failed_step].error or {}
            code = error.get("code") if error.get("code") in RUN_CODES else ErrorCode.STEP_FAILED
            run.error = {
                "code": code,
                "detail": f"Step '{failed_step}' failed: {error.get('message', 'unknown error')}",
                "step_id": failed_step,
            }
        if outcome == RunStatus.CANCELLED and run.error is None:
            run.error = {
                "code": ErrorCode.CANCELLED,
                "detail": "The run was cancelled.",
                "step_id": None,
            }
            move_run(run, RunStatus.CANCELLED, self.now, self.log, "run_cancelled")
        elif run.status != RunStatus.SUCCEEDED:
            move_run(
                run, RunStatus.FAILED, self.now, self.log, "orchestration_error", error=run.error
            )
        if run.parent_run_id:
            dispatch.enqueue_parent_resume(run.pk)
        if not self._settings.get("max_concurrent_runs"):
            return
        queued = (
            Run.objects.filter(orchestration_id=run.orchestration_id, status=RunStatus.QUEUED)
            .exclude(pk=run.pk)
            .order_by("created_at")
            .values_list("pk", flat=True)
            .first()
        )
        if queued:
            dispatch.enqueue_advance(queued)

    def _output(self) -> Any:
        template = self.definition.get("output")
        if template:
            return render(template, self.context())
        finished = sorted(
            (s for s in self.steps.values() if s.status == StepStatus.SUCCEEDED),
            key=lambda s: (s.finished_at, s.created_at),
        )
        return default_run_output(
            [s.node_id for s in finished], {s.node_id: s.output for s in finished}
        )

    # --- writing it all --------------------------------------------------------------------

    @property
    def run_ended(self) -> bool:
        return self.run.status in RUN_TERMINAL and not self.ended_before

    def ended_steps(self) -> list[StepRun]:
        """The attempts this change brought to an end (a failed attempt that is retried too)."""
        seen = {**self.stored, **self.unsaved, **{step.pk: step for step in self.steps.values()}}
        return [
            step
            for pk, step in seen.items()
            if step.status in STEP_TERMINAL and self.loaded.get(pk) not in STEP_TERMINAL
        ]

    def _config_of(self, step: StepRun) -> Any:
        """The config of a worker step this change hands to its worker, rendered on the run as
        the change leaves it (what the worker would read after the commit). None when a template
        fails: the worker renders it again and fails the step, saying why."""
        try:
            return render(self.node(step.node_id)["config"], self.context())
        except TemplateError:
            return None

    def _render_taken(self) -> None:
        """The input of the worker step this change inserted for its worker, written with the
        step's row: the worker neither reads the steps again nor writes the input before it
        runs the node. (A pending step it adopted got its input with the claim.)"""
        taken = self.taken
        if taken is None or taken.pk not in self.unsaved:
            return
        config = self._config_of(taken)
        if config is not None:
            taken.input = self.taken_input = config

    def save(self) -> None:
        self._render_taken()
        self.run.steps_total = len(self.graph.node_ids)
        self.run.steps_completed = sum(
            1 for step in self.steps.values() if step.status in STEP_TERMINAL
        )
        tracing.record(self)
        self.flush_steps()
        self.log.flush(save_seq=False)
        self.run.save(update_fields=RUN_FIELDS)


# How a step starts, by where its type runs (orchestrator.definition.nodes.RUNS_ON).
STARTERS: dict[str, Callable[[Progress, Mapping[str, Any]], bool]] = {
    "worker": Progress._start_worker,
    "inline": Progress._start_inline,
    "people": Progress._start_people,
    "timer": Progress._start_timer,
    "child_run": Progress._start_child_run,
}


def change(run_id: Pk, action: Callable[[Progress], None]) -> Run:
    """Run `action(progress)` on the locked run, then advance and save, in one transaction."""
    with transaction.atomic():
        progress = Progress.lock(run_id)
        action(progress)
        progress.save()
        return progress.run
