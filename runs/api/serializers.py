"""Response shapes of runs, steps and events, and the bodies that start or replay runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Prefetch, prefetch_related_objects
from rest_framework import serializers

from approvals.models import Approval, ApprovalKind, ApprovalStatus
from orchestrator.api.fields import (
    BlankAsNullField,
    MoneyField,
    StrictBooleanField,
    StrictCharField,
    StrictSerializer,
)
from orchestrator.definition.checks import IDENTIFIER
from orchestrator.definition.nodes import types_running_on, waits_for_people
from runs.engine import RunStatus, StepStatus
from runs.models import OutputVersion, Run, RunEvent, StepRun
from runs.services.context import latest_of


def orchestration_name(run: Run) -> str:
    """A list page annotates `orchestration_name` so as not to load each orchestration (and its
    definition); a single run reads the name through the relation."""
    name = getattr(run, "orchestration_name", None)
    return run.orchestration.name if name is None else name


class OrchestrationNameField(serializers.CharField):
    def get_attribute(self, run: Run) -> str:
        return orchestration_name(run)


def prefetch_human_input(runs: Sequence[Run]) -> None:
    """What the paused runs of a page wait for, so that `human_input_required` costs no query per
    run: at most three queries for the page, none when no run on it is paused."""
    paused = [run for run in runs if run.status == RunStatus.PAUSED]
    if not paused:
        return
    prefetch_related_objects(
        paused,
        Prefetch(
            "step_runs",
            queryset=StepRun.objects.filter(
                status=StepStatus.WAITING, node_type__in=types_running_on("people")
            ).only("run_id", "node_id", "input"),
            to_attr="waiting_steps",
        ),
    )
    held = [run for run in paused if run.budget_hold]
    if held:
        prefetch_related_objects(
            held,
            Prefetch(
                "approvals",
                queryset=Approval.objects.filter(step_id="", status=ApprovalStatus.PENDING),
                to_attr="budget_gates",
            ),
        )
    # Paused with no person's step to answer: an agent's tool call may wait for approval.
    calling = [
        run for run in paused if not run.budget_hold and not getattr(run, "waiting_steps", None)
    ]
    if calling:
        prefetch_related_objects(
            calling,
            Prefetch(
                "approvals",
                queryset=Approval.objects.filter(
                    kind=ApprovalKind.TOOL_CALL, status=ApprovalStatus.PENDING
                ),
                to_attr="tool_call_gates",
            ),
        )


def tool_call_gate(run: Run) -> dict[str, Any] | None:
    """A paused run whose agent step waits for a tool call's approval: what the decider sees."""
    if hasattr(run, "tool_call_gates"):  # newest first, as Approval orders them
        gate = run.tool_call_gates[0] if run.tool_call_gates else None
    else:
        gate = run.approvals.filter(
            kind=ApprovalKind.TOOL_CALL, status=ApprovalStatus.PENDING
        ).first()
    if gate is None:
        return None
    return {
        "approval_id": str(gate.pk),
        "step_id": gate.step_id,
        "kind": gate.kind,
        "prompt": gate.prompt,
        "fields": [],
        "agent_context": "",
        "tool": (gate.payload or {}).get("tool"),
        "args": (gate.payload or {}).get("args"),
        "calls": gate.tool_calls,
    }


class RunSerializer(serializers.ModelSerializer):
    orchestration_name = OrchestrationNameField(read_only=True)
    trigger = serializers.SerializerMethodField()
    entry_step = BlankAsNullField(
        read_only=True,
        allow_null=True,
        help_text=(
            "The step the run started at: its trigger's `node_id` (a replay keeps it). Steps "
            "that are not this one or downstream of it are `skipped`. Null: the run started at "
            "the steps with no incoming edge."
        ),
    )
    replays_run_id = serializers.UUIDField(read_only=True, allow_null=True)
    parent_run_id = serializers.UUIDField(read_only=True, allow_null=True)
    cost_usd = MoneyField(read_only=True)
    unpriced = serializers.BooleanField(
        read_only=True,
        help_text="Some step used a model with no known price: `cost_usd` is the priced part.",
    )
    tokens = serializers.SerializerMethodField()
    human_input_required = serializers.SerializerMethodField()
    requested_by = serializers.CharField(source="requested_by_name", read_only=True)
    duration_ms = serializers.IntegerField(read_only=True, allow_null=True)
    refine_error = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "orchestration",
            "orchestration_name",
            "version",
            "status",
            "trigger",
            "entry_step",
            "input",
            "output",
            "output_type",
            "shared_state",
            "error",
            "replays_run_id",
            "parent_run_id",
            "depth",
            "cost_usd",
            "unpriced",
            "tokens",
            "steps_completed",
            "steps_total",
            "human_input_required",
            "metadata",
            "requested_by",
            "refine_status",
            "refine_error",
            "created_at",
            "started_at",
            "finished_at",
            "duration_ms",
        ]

    def to_representation(self, run: Run) -> dict:
        """The declared fields, written out. DRF's field-by-field walk cost more than the queries
        of a list page; tests/api/test_list_performance.py checks that both give the same."""
        duration_ms = run.duration_ms
        return {
            "id": str(run.id),
            "orchestration": run.orchestration_id,
            "orchestration_name": orchestration_name(run),
            "version": run.version,
            "status": run.status,
            "trigger": self.get_trigger(run),
            "entry_step": run.entry_step or None,
            "input": run.input,
            "output": run.output,
            "output_type": run.output_type,
            "shared_state": run.shared_state,
            "error": run.error,
            "replays_run_id": str(run.replays_run_id) if run.replays_run_id else None,
            "parent_run_id": str(run.parent_run_id) if run.parent_run_id else None,
            "depth": run.depth,
            "cost_usd": float(run.cost_usd),
            "unpriced": run.unpriced,
            "tokens": self.get_tokens(run),
            "steps_completed": run.steps_completed,
            "steps_total": run.steps_total,
            "human_input_required": self.get_human_input_required(run),
            "metadata": run.metadata,
            "requested_by": run.requested_by_name,
            "refine_status": run.refine_status,
            "refine_error": self.get_refine_error(run),
            "created_at": _time(run.created_at),
            "started_at": _time(run.started_at),
            "finished_at": _time(run.finished_at),
            "duration_ms": duration_ms,
        }

    def get_trigger(self, run: Run) -> dict:
        return {"kind": run.trigger_kind, "id": str(run.trigger_ref) if run.trigger_ref else None}

    def get_refine_error(self, run: Run) -> str | None:
        """Why the last refine failed, while `refine_status` is `failed`."""
        return run.refine_error or None

    def get_tokens(self, run: Run) -> dict:
        return {"input": run.tokens_input, "output": run.tokens_output}

    def get_human_input_required(self, run: Run) -> dict | None:
        if run.status != "paused":
            return None
        if run.budget_hold:
            if hasattr(run, "budget_gates"):  # newest first, as Approval orders them
                gate = run.budget_gates[0] if run.budget_gates else None
            else:
                gate = run.approvals.filter(step_id="", status="pending").first()
            if gate is not None:
                return {
                    "approval_id": str(gate.pk),
                    "step_id": None,
                    "prompt": gate.prompt,
                    "fields": gate.fields,
                    "agent_context": "",
                }
        waiting = getattr(run, "waiting_steps", None)
        if waiting is None:
            waiting = [
                s
                for s in run.step_runs.all()
                if s.status == StepStatus.WAITING and waits_for_people(s.node_type)
            ]
        if not waiting:
            return tool_call_gate(run)
        request = dict(waiting[0].input or {})
        request.setdefault("step_id", waiting[0].node_id)
        request.setdefault("approval_id", None)
        return request


def step_rows(run: Run, definition: dict, order: tuple[str, ...]) -> list[dict]:
    """One entry per node, in topological order: the latest attempt, or pending if none yet."""
    latest = latest_of(run.step_runs.all())
    nodes = {n["id"]: n for n in definition["nodes"]}
    rows = []
    for node_id in order:
        node, step = nodes[node_id], latest.get(node_id)
        rows.append(
            {
                "step_id": node_id,
                "name": node["name"],
                "type": node["type"],
                "status": step.status if step else StepStatus.PENDING,
                "attempt": step.attempt if step else 0,
                "input": step.input if step else None,
                "output": step.output if step else None,
                "error": step.error if step else None,
                "started_at": _time(step.started_at) if step else None,
                "finished_at": _time(step.finished_at) if step else None,
                "duration_ms": step.duration_ms if step else None,
                "model": (step.model or None) if step else None,
                "tokens": {
                    "input": step.tokens_input if step else 0,
                    "output": step.tokens_output if step else 0,
                },
                "cost_usd": _money(step.cost_usd) if step else 0.0,
                "unpriced": step.unpriced if step else False,
                "turns": step.turns if step else 0,
                "tool_calls": step.tool_calls if step else 0,
                "child_run_id": str(step.child_run_id) if step and step.child_run_id else None,
            }
        )
    return rows


def _money(value) -> float | None:
    """A stored cost for JSON: None stays None (an unknown price is never shown as 0)."""
    return None if value is None else float(value)


def _time(value) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value else None


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunEvent
        fields = ["seq", "type", "ts", "step_id", "data"]


class FireSerializer(StrictSerializer):
    input = serializers.JSONField(required=False)
    message = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    # "async" is a Python keyword, so the field is declared under another name below.
    metadata = serializers.DictField(child=StrictCharField(allow_blank=True), required=False)

    def get_fields(self):
        fields = super().get_fields()
        fields["async"] = StrictBooleanField(required=False, default=True)
        return fields

    def validate(self, attrs):
        if "input" in attrs and not isinstance(attrs["input"], dict):
            raise serializers.ValidationError({"input": ["must be a JSON object"]})
        return attrs


class ReplaySerializer(StrictSerializer):
    from_step = serializers.RegexField(
        IDENTIFIER,
        required=False,
        error_messages={"invalid": "must be a step id (lowercase letters, digits and _)"},
    )


class RefineSerializer(StrictSerializer):
    prompt = StrictCharField(max_length=20_000)


class OutputVersionSerializer(serializers.ModelSerializer):
    prompt = serializers.SerializerMethodField()

    class Meta:
        model = OutputVersion
        fields = ["version", "prompt", "created_at"]

    def get_prompt(self, version: OutputVersion) -> str | None:
        """The original output was asked for by no prompt: null rather than ""."""
        return version.prompt or None


class OutputVersionDetailSerializer(OutputVersionSerializer):
    class Meta(OutputVersionSerializer.Meta):
        fields = ["version", "output", "output_type", "prompt", "created_at"]
