"""Spans of runs, steps, model calls and tool calls, written when they end.

One trace per fired run: its trace id is the root run's id, so a subflow's child run (a span
under the parent's subflow step) joins its parent's trace. A run span's id comes from the run
id and a step span's from the step row's id, so the span of a step ending in a worker and the
span of its run ending later in another process link up. Model calls and tool calls are read
back from the step's events (`agent_turn`, `tool_result`), which carry their tokens, cost and
duration, and become children of the step's span.

Spans carry ids, names, statuses, error codes, models, tokens and costs, never inputs,
outputs, prompts or error messages: those may hold secrets. They are written after the commit
of the transition, so a rolled-back transition writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction

from config import tracing
from config.tracing import SpanRecord, span_id_of, trace_id_of
from runs.engine import RunStatus, StepStatus
from runs.models import Run, RunEvent, StepRun

if TYPE_CHECKING:
    from runs.services.progress import Progress

MODEL_CALL_EVENTS = ("step_start", "agent_turn", "tool_result")


def record(progress: Progress) -> None:
    """After commit, write the spans of the attempts this change ended and, when it ended, of
    the run. Steps that never started (skipped, cancelled while pending) have none."""
    if not tracing.enabled():
        return
    run, run_ended = progress.run, progress.run_ended
    started = [step for step in progress.ended_steps() if step.started_at is not None]
    if started or run_ended:
        transaction.on_commit(lambda: _write(run, started, run_ended=run_ended), robust=True)


def _write(run: Run, steps: list[StepRun], *, run_ended: bool) -> None:
    records = [_step_span(run, step) for step in steps]
    records += _agent_spans(run, [step for step in steps if step.node_type == "agent"])
    if run_ended:
        records.append(_run_span(run))
    tracing.emit(records)


def _trace_id(run: Run) -> int:
    return trace_id_of(run.root_run_id or run.pk)


def _error_code(error: dict[str, Any] | None) -> str | None:
    return (error or {}).get("code")


def _run_span(run: Run) -> SpanRecord:
    names: Mapping[str, Any] = (
        Run.objects.filter(pk=run.pk).values("organization__slug", "orchestration__slug").first()
        or {}
    )
    parent = span_id_of(run.parent_run_id) if run.parent_run_id else None
    if run.parent_run_id:
        # Under the subflow step that started it, in the parent run's trace.
        # (or the agent step whose tool call started it).
        step_run_id = run.tool_call_step_id or (
            StepRun.objects.filter(run_id=run.parent_run_id, child_run_id=run.pk)
            .values_list("pk", flat=True)
            .first()
        )
        if step_run_id is not None:
            parent = span_id_of(step_run_id)
    code = _error_code(run.error)
    slug = names.get("orchestration__slug") or str(run.orchestration_id)
    return SpanRecord(
        name=f"run {slug}",
        trace_id=_trace_id(run),
        span_id=span_id_of(run.pk),
        parent_id=parent,
        start=run.started_at or run.created_at,
        end=run.finished_at or run.started_at or run.created_at,
        attributes={
            "orchestrator.run.id": str(run.pk),
            "orchestrator.run.status": run.status,
            "orchestrator.run.trigger": run.trigger_kind,
            "orchestrator.run.depth": run.depth,
            "orchestrator.orchestration.id": str(run.orchestration_id),
            "orchestrator.orchestration.slug": names.get("orchestration__slug"),
            "orchestrator.orchestration.version": run.version,
            "orchestrator.organization.slug": names.get("organization__slug"),
            "orchestrator.parent_run.id": str(run.parent_run_id) if run.parent_run_id else None,
            "orchestrator.error.code": code,
            "orchestrator.tokens.input": run.tokens_input,
            "orchestrator.tokens.output": run.tokens_output,
            "orchestrator.cost_usd": float(run.cost_usd),
        },
        error=code if run.status == RunStatus.FAILED else None,
    )


def _step_span(run: Run, step: StepRun) -> SpanRecord:
    assert step.started_at is not None  # only the steps that started are traced (`record`)
    code = _error_code(step.error)
    return SpanRecord(
        name=f"step {step.node_id}",
        trace_id=_trace_id(run),
        span_id=span_id_of(step.pk),
        parent_id=span_id_of(run.pk),
        start=step.started_at,
        end=step.finished_at or step.started_at,
        attributes={
            "orchestrator.run.id": str(run.pk),
            "orchestrator.orchestration.id": str(run.orchestration_id),
            "orchestrator.step.id": step.node_id,
            "orchestrator.step.type": step.node_type,
            "orchestrator.step.status": step.status,
            "orchestrator.step.attempt": step.attempt,
            "orchestrator.step.model": step.model or None,
            "orchestrator.child_run.id": str(step.child_run_id) if step.child_run_id else None,
            "orchestrator.error.code": code,
            "orchestrator.tokens.input": step.tokens_input,
            "orchestrator.tokens.output": step.tokens_output,
            "orchestrator.cost_usd": None if step.cost_usd is None else float(step.cost_usd),
        },
        error=code if step.status == StepStatus.FAILED else None,
    )


def _agent_spans(run: Run, steps: list[StepRun]) -> list[SpanRecord]:
    """The model calls and tool calls of these attempts, from their events: an attempt's
    events are those between its `step_start` and the next attempt's."""
    if not steps:
        return []
    wanted = {(step.node_id, step.attempt): step for step in steps}
    attempt_of: dict[str, int] = {}
    records: list[SpanRecord] = []
    for node_id, kind, data, ts in (
        RunEvent.objects.filter(
            run_id=run.pk, step_id__in={step.node_id for step in steps}, type__in=MODEL_CALL_EVENTS
        )
        .order_by("seq")
        .values_list("step_id", "type", "data", "ts")
    ):
        if kind == "step_start":
            attempt_of[node_id] = data.get("attempt", 1)
            continue
        step = wanted.get((node_id, attempt_of.get(node_id, 1)))
        if step is not None:
            records.append(_call_span(run, step, kind, data, ts))
    return records


def _call_span(
    run: Run, step: StepRun, kind: str, data: dict[str, Any], ended: datetime
) -> SpanRecord:
    # The event is written just after the call returned; its duration gives the start. Kept
    # within the step's span, whose times come from another clock read.
    assert step.started_at is not None  # as in _step_span
    end = min(max(ended, step.started_at), step.finished_at or ended)
    start = max(end - timedelta(milliseconds=data.get("duration_ms") or 0), step.started_at)
    common = {"orchestrator.run.id": str(run.pk), "orchestrator.step.id": step.node_id}
    if kind == "agent_turn":
        model = str(data.get("model") or step.model)
        system, _, name = model.partition("/")
        tokens = data.get("tokens") or {}
        return SpanRecord(
            name=f"chat {name or model}",
            trace_id=_trace_id(run),
            parent_id=span_id_of(step.pk),
            start=start,
            end=end,
            kind="CLIENT",
            attributes={
                **common,
                "gen_ai.operation.name": "chat",
                "gen_ai.system": system if name else None,
                "gen_ai.request.model": name or model,
                "gen_ai.usage.input_tokens": tokens.get("input"),
                "gen_ai.usage.output_tokens": tokens.get("output"),
                "orchestrator.cost_usd": data.get("cost_usd"),
                "orchestrator.turn": data.get("turn"),
            },
        )
    tool = str(data.get("tool_name"))
    return SpanRecord(
        name=f"execute_tool {tool}",
        trace_id=_trace_id(run),
        parent_id=span_id_of(step.pk),
        start=start,
        end=end,
        attributes={
            **common,
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "orchestrator.tool.ok": bool(data.get("ok")),
        },
        error=None if data.get("ok") else "tool_failed",
    )
