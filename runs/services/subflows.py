"""Sub-orchestrations: a step that runs another orchestration as a child run and waits for it.

A fired run and every run its subflows start, at any depth, form one tree. Besides the depth,
the tree's size is bounded: a flow that calls itself twice per level would otherwise start 2^depth
runs from one request. The root run's orchestration settings `max_runs_per_root` and
`max_steps_per_root` (else the instance's MAX_RUNS_PER_ROOT and MAX_STEPS_PER_ROOT) cap how many
runs the tree may hold and how many steps (nodes) they have in all; a subflow step whose child
would go over fails with `run_limit_exceeded` instead of starting it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Count, Q, Sum

from core.domain_errors import DomainError
from core.types import Pk
from orchestrator.choices import TriggerKind
from orchestrator.definition import TemplateError, render
from orchestrator.models import Orchestration
from runs.engine import RUN_TERMINAL, ErrorCode, StepStatus
from runs.models import Run, StepRun
from runs.services.creation import create_run
from runs.services.transitions import move_step
from runs.services.waiting import go_on_with_tool_calls

if TYPE_CHECKING:
    from runs.services.progress import Progress

DEFAULT_MAX_DEPTH = 5


def target_orchestration(organization_id: Pk, ref: str) -> Orchestration | None:
    """The orchestration a subflow or an orchestration tool names, by id or slug: only ever
    one of the run's own organization."""
    return Orchestration.objects.alive().filter(organization_id=organization_id).by_key(ref)


def _tree_limit_problem(run: Run, target: Orchestration) -> str | None:
    """Why the tree of `run`'s root may not take one more child run of `target`, or None.

    The root row is locked first, so two subflow steps in different branches of one tree (each
    holding only its own run's lock) cannot both take the last place."""
    root_id = run.root_run_id or run.pk
    root = (
        Run.objects.select_for_update(of=("self",))
        .select_related("orchestration_version")
        .get(pk=root_id)
    )
    limits = root.orchestration_version.settings or {}
    max_runs = limits.get("max_runs_per_root") or settings.MAX_RUNS_PER_ROOT
    max_steps = limits.get("max_steps_per_root") or settings.MAX_STEPS_PER_ROOT
    tree = Run.objects.filter(Q(pk=root_id) | Q(root_run_id=root_id)).aggregate(
        runs=Count("pk"), steps=Sum("steps_total")
    )
    if tree["runs"] + 1 > max_runs:
        return (
            f"Starting this subflow would make run {tree['runs'] + 1} of the tree of run "
            f"{root_id}, over max_runs_per_root {max_runs}."
        )
    steps = (tree["steps"] or 0) + target.step_count
    if steps > max_steps:
        return (
            f"Starting this subflow would bring the tree of run {root_id} to {steps} steps, "
            f"over max_steps_per_root {max_steps}."
        )
    return None


def _depth_problem(run: Run) -> str | None:
    """Why a child of `run` would be too deep, or None."""
    max_depth = (run.orchestration_version.settings or {}).get(
        "max_subflow_depth", DEFAULT_MAX_DEPTH
    )
    depth = run.depth + 1
    if depth > max_depth:
        return f"Subflow depth {depth} exceeds max_subflow_depth {max_depth}."
    return None


def start_subflow(progress: Progress, node: Mapping[str, Any]) -> bool:
    """Start the child run; True when the step already ended (it failed to start)."""
    run = progress.run
    step = progress.new_step(node["id"], StepStatus.RUNNING)
    progress.log.add("step_start", node["id"], type="subflow", name=node["name"], attempt=1)
    depth = run.depth + 1
    too_deep = _depth_problem(run)
    if too_deep is not None:
        progress.fail(step, too_deep, retryable=False, code=ErrorCode.SUBFLOW_DEPTH_EXCEEDED)
        return True
    try:
        ref = str(render(node["config"]["orchestration"], progress.context()))
        child_input = render(node["config"].get("input", {}), progress.context())
    except TemplateError as exc:
        progress.fail(step, f"template error: {exc}", retryable=False)
        return True
    step.input = {"orchestration": ref, "input": child_input}
    target = target_orchestration(run.organization_id, ref)
    if target is None:
        progress.fail(step, f"No orchestration '{ref}' in this organization.", retryable=False)
        return True
    problem = _tree_limit_problem(run, target)
    if problem is not None:
        progress.fail(step, problem, retryable=False, code=ErrorCode.RUN_LIMIT_EXCEEDED)
        return True
    try:
        child = create_run(
            target,
            child_input,
            trigger_kind=TriggerKind.SUBFLOW,
            parent=run,
            parent_step_id=node["id"],
            depth=depth,
            requested_by=run.requested_by,
        )
    except DomainError as exc:
        progress.fail(step, f"The subflow's input was refused: {exc.detail}", retryable=False)
        return True
    step.child_run = child
    move_step(
        step,
        StepStatus.WAITING,
        progress.now,
        progress.log,
        "subflow_started",
        child_run_id=str(child.pk),
        orchestration=str(target.pk),
    )
    progress.store(step)
    return False


def start_tool_calls(progress: Progress, step: StepRun, calls: list[dict[str, Any]]) -> None:
    """An agent step's model called orchestration tools: one child run per call, linked to the
    step's attempt and the call, under the subflows' depth and tree limits; the step waits for
    them (`resume_parent`). A call that cannot start fails the step."""
    run = progress.run
    too_deep = _depth_problem(run)
    if too_deep is not None:
        progress.fail(step, too_deep, retryable=False, code=ErrorCode.SUBFLOW_DEPTH_EXCEEDED)
        return
    children = []
    for call in calls:
        target = target_orchestration(run.organization_id, call["orchestration"])
        if target is None:
            progress.fail(
                step,
                f"The orchestration of the tool '{call['tool']}' is no longer in this "
                "organization.",
                retryable=False,
            )
            return
        problem = _tree_limit_problem(run, target)
        if problem is not None:
            progress.fail(step, problem, retryable=False, code=ErrorCode.RUN_LIMIT_EXCEEDED)
            return
        try:
            child = create_run(
                target,
                call["args"] if isinstance(call["args"], dict) else {},
                trigger_kind=TriggerKind.SUBFLOW,
                parent=run,
                parent_step_id=step.node_id,
                depth=run.depth + 1,
                requested_by=run.requested_by,
            )
        except DomainError as exc:
            progress.fail(
                step,
                f"The input of the tool call '{call['tool']}' was refused: {exc.detail}",
                retryable=False,
            )
            return
        Run.objects.filter(pk=child.pk).update(
            tool_call_step=step, tool_call_id=call["tool_call_id"]
        )
        children.append((call, child, target))
    if step.status != StepStatus.WAITING:  # it may already wait for a person's decision
        move_step(step, StepStatus.WAITING, progress.now)
    # The run view links a step's child run: the last one started.
    step.child_run = children[-1][1]
    progress.store(step)
    progress.steps[step.node_id] = step
    for call, child, target in children:
        progress.log.add(
            "subflow_started",
            step.node_id,
            child_run_id=str(child.pk),
            orchestration=str(target.pk),
            tool_call_id=call["tool_call_id"],
            tool=call["tool"],
        )


def tool_call_results(run: Run, node_id: str) -> list[dict[str, Any]]:
    """The result of every ended child run a step started for a tool call, as the agent is
    given it: the child's output, or its failure as an error text."""
    ended = Run.objects.filter(
        parent_run=run, parent_step_id=node_id, status__in=RUN_TERMINAL
    ).exclude(tool_call_id="")
    return [
        {"tool_call_id": child.tool_call_id, "result": _tool_result(child)}
        for child in ended.order_by("created_at")
    ]


def ended_tool_call_children() -> list[Pk]:
    """One ended child of each agent step that waits for its tool calls' child runs and whose
    unsettled children have all ended: what resumes the step if the message telling of it was
    lost."""
    unsettled = Run.objects.filter(tool_call_settled=False)
    waiting = (
        StepRun.objects.filter(status=StepStatus.WAITING, tool_call_runs__in=unsettled)
        .exclude(tool_call_runs__in=unsettled.exclude(status__in=RUN_TERMINAL))
        .distinct()
    )
    return [
        child
        for step in waiting.values_list("pk", flat=True)
        for child in unsettled.filter(tool_call_step_id=step).values_list("pk", flat=True)[:1]
    ]


def _tool_result(child: Run) -> Any:
    if child.status == "succeeded":
        return child.output
    detail = (child.error or {}).get("detail", "")
    return f"error: run {child.pk} {child.status}: {detail}"


def child_usage(*children: Run) -> dict[str, Any]:
    """What child runs cost, as `Progress.spend` takes it: their priced cost, their tokens, and
    whether some of their cost is unknown."""
    return {
        "cost_usd": sum((Decimal(c.cost_usd) for c in children), Decimal(0)),
        "tokens_input": sum(c.tokens_input for c in children),
        "tokens_output": sum(c.tokens_output for c in children),
        "unpriced": any(c.unpriced for c in children),
    }


def _resume_tool_call(progress: Progress, child: Run) -> None:
    """A child run of a tool call ended: once all the step's unsettled children have, their
    cost is spent for the step (on its row and the run's total, under the run's credit limit)
    and the step goes on; a child stopped by a tree limit fails it, and so does a run their cost
    took over its credit limit (as the step's own model calls would)."""
    step = progress.steps.get(child.parent_step_id)
    if step is None or step.pk != child.tool_call_step_id or step.status != StepStatus.WAITING:
        return
    children = list(Run.objects.filter(tool_call_step_id=step.pk, tool_call_settled=False))
    if any(c.status not in RUN_TERMINAL for c in children):
        return
    Run.objects.filter(pk__in=[c.pk for c in children]).update(tool_call_settled=True)
    usage = child_usage(*children)
    run = progress.run
    spent_before = run.cost_usd
    if progress.spend(step, **usage):
        # Their cost took the run over its credit limit: the agent makes no further model call.
        left = max((run.credit_limit or Decimal(0)) - spent_before, Decimal(0))
        progress.fail(
            step,
            f"cost limit exceeded: the tool calls' child runs cost ${usage['cost_usd']:.4f}, "
            f"the run had ${left:.4f} left",
            retryable=False,
            code=ErrorCode.COST_LIMIT_EXCEEDED,
        )
        return
    for done in children:
        code = (done.error or {}).get("code")
        if done.status != "succeeded" and code in ErrorCode.TREE_LIMITS:
            progress.fail(
                step,
                f"The tool call's run {done.pk} {done.status}: {(done.error or {}).get('detail')}",
                retryable=False,
                code=code,
            )
            return
    go_on_with_tool_calls(progress, step)
    if step.status == StepStatus.WAITING:  # still waiting for a person's decision
        progress.store(step)


def resume_parent(progress: Progress, child: Run) -> None:
    """The child ended: its output (or failure) becomes the waiting step's result."""
    if child.tool_call_id:
        _resume_tool_call(progress, child)
        return
    step = progress.steps.get(child.parent_step_id)
    if step is None or step.child_run_id != child.pk or step.status != StepStatus.WAITING:
        return
    # The child's cost is its priced part; a cost it could not price leaves the parent's open too.
    usage = child_usage(child)
    if child.status == "succeeded":
        progress.succeed(step, child.output, **usage)
    else:
        error = child.error or {}
        code = error.get("code")
        if code not in ErrorCode.TREE_LIMITS:
            code = ErrorCode.STEP_FAILED
        progress.fail(
            step,
            f"Subflow run {child.pk} {child.status}: {error.get('detail', '')}",
            retryable=False,
            code=code,
            **usage,
        )
