"""Run and step statuses change in one place (`runs.services.transitions`), which checks the
engine's transition tables: a finished step or run is never rewritten."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from runs.engine import InvalidTransition, StepStatus
from runs.models import Run, RunEvent, StepRun
from runs.services import lifecycle
from runs.services.progress import change
from tests.runs.conftest import edge, transform
from tests.runs.harness import run_to_rest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("orchestrator", "runs", "approvals", "gallery", "config")
THE_ONE_MODULE = ROOT / "runs" / "services" / "transitions.py"
STATUS_VOCABULARIES = {"RunStatus", "StepStatus"}
MODELS = {"Run", "StepRun"}
RELATED_MANAGERS = {"step_runs", "child_runs"}
WRITES = {"update", "create", "get_or_create", "update_or_create"}


def _names(node: ast.AST) -> set[str]:
    """Every name and attribute an expression mentions."""
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr)
    return found


def _holds_a_run_or_step(receiver: ast.AST) -> bool:
    """`run`, `self.run`, `step`, `child_run`... : by the name the code gives the object."""
    name = receiver.id if isinstance(receiver, ast.Name) else getattr(receiver, "attr", "")
    return "run" in name.lower() or "step" in name.lower()


def _queryset_base(call: ast.Call) -> set[str]:
    """The names along a chain like `StepRun.objects.filter(...).exclude(...).update`."""
    names, node = set(), call.func
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
            node = node.value
        else:
            if isinstance(node, ast.Name):
                names.add(node.id)
            return names


def status_writes(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, what) for each place in `tree` that writes a run's or a step's status."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            flat = [t for target in targets for t in ast.walk(target)]
            for target in flat:
                if not (isinstance(target, ast.Attribute) and target.attr == "status"):
                    continue
                value = node.value if node.value is not None else target
                if _holds_a_run_or_step(target.value) or _names(value) & STATUS_VOCABULARIES:
                    yield target.lineno, f"assigns {ast.unparse(target)}"
        elif isinstance(node, ast.Call):
            status = [k for k in node.keywords if k.arg == "status"]
            if not status:
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in MODELS:
                yield node.lineno, f"builds a {func.id} with a status"
            elif isinstance(func, ast.Attribute) and func.attr in WRITES:
                chain = _queryset_base(node)
                if chain & (MODELS | RELATED_MANAGERS) or _names(status[0].value) & (
                    STATUS_VOCABULARIES
                ):
                    yield node.lineno, f"writes status= in .{func.attr}()"
            elif isinstance(func, ast.Name) and func.id == "setattr":
                yield node.lineno, "sets a status with setattr"


def status_writes_outside_the_one_module() -> list[str]:
    found = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if path == THE_ONE_MODULE or "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            for line, what in status_writes(tree):
                found.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    return found


def test_no_code_outside_the_transitions_module_writes_a_run_or_step_status():
    found = status_writes_outside_the_one_module()
    assert not found, "a status written outside runs/services/transitions.py:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "step.status = StepStatus.FAILED",
        "self.run.status = 'failed'",
        "current.status = RunStatus.CANCELLED",
        "a, child_run.status = 1, 'x'",
        "StepRun.objects.filter(pk=1).exclude(x=2).update(status='running')",
        "run.step_runs.update(status=StepStatus.CANCELLED)",
        "stale.update(status=StepStatus.PENDING)",
        "Run.objects.create(status=RunStatus.QUEUED)",
        "StepRun(run=run, status=StepStatus.PENDING)",
    ],
)
def test_the_guard_finds_a_status_written_by_hand(source):
    assert len(list(status_writes(ast.parse(source)))) == 1


@pytest.mark.parametrize(
    "source",
    [
        "approval.status = ApprovalStatus.DENIED",
        "current.status = status",
        "StepRun.objects.filter(status=StepStatus.RUNNING)",
        "Approval.objects.filter(run_id=1).update(status=ApprovalStatus.CANCELLED)",
    ],
)
def test_the_guard_leaves_other_vocabularies_and_reads_alone(source):
    assert list(status_writes(ast.parse(source))) == []


@pytest.mark.django_db
def test_a_finished_step_is_never_rewritten(make_flow):
    run = run_to_rest(make_flow([transform("a", "first"), transform("b", "x")], [edge("a", "b")]))
    step = StepRun.objects.get(run=run, node_id="a")

    def rewrite(progress):
        progress.succeed(progress.steps["a"], "second")

    with pytest.raises(InvalidTransition, match="succeeded -> succeeded"):
        change(run.pk, rewrite)
    step.refresh_from_db()
    assert (step.status, step.output) == (StepStatus.SUCCEEDED, "first")


@pytest.mark.django_db
def test_a_finished_run_is_never_ended_again(make_flow):
    run = run_to_rest(make_flow([transform("a", "x")], []))
    events = RunEvent.objects.filter(run=run).count()

    with pytest.raises(InvalidTransition, match="succeeded -> cancelled"):
        change(run.pk, lambda progress: progress.finish("cancelled", None))
    run.refresh_from_db()
    assert (run.status, RunEvent.objects.filter(run=run).count()) == ("succeeded", events)


@pytest.mark.django_db
def test_a_run_cancelled_while_queued_starts_and_ends_at_once(make_flow):
    flow = make_flow([transform("a", "x")], [])
    run = lifecycle.create_run(flow, {}, trigger_kind="api")
    lifecycle.cancel(run)
    run = Run.objects.get(pk=run.pk)
    assert run.status == "cancelled"
    assert run.started_at is not None
    assert run.finished_at == run.started_at
