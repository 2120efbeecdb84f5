"""Handing work to Celery once the transaction that created it has committed.

Long waits are rows with a `wake_at`, found by the reaper; only short ones also get a countdown,
so a restart or a broker flush never loses a timer.
"""

from __future__ import annotations

from typing import Any

from celery import Task, current_app
from django.db import transaction

from core.types import Pk

MAX_COUNTDOWN_S = 60.0


def _task(name: str) -> Task[Any, Any]:
    """A task of runs/tasks.py, looked up by its registered name: the tasks call the services, so
    the services reach the tasks through Celery's registry (RunsConfig.ready registers them)."""
    return current_app.tasks[f"runs.tasks.{name}"]


def enqueue_step(step_run_id: Pk, countdown: float = 0.0) -> None:
    if countdown > MAX_COUNTDOWN_S:
        return
    # celery-types wants a float countdown; Celery takes None for "at once".
    transaction.on_commit(
        lambda: _task("execute_step").apply_async(
            (str(step_run_id),),
            countdown=countdown or None,  # type: ignore[arg-type]
        )
    )


def enqueue_timer(step_run_id: Pk, countdown: float) -> None:
    if countdown > MAX_COUNTDOWN_S:
        return
    delay = max(countdown, 0) or None
    transaction.on_commit(
        lambda: _task("fire_timer").apply_async(
            (str(step_run_id),),
            countdown=delay,  # type: ignore[arg-type]  # as above: None is "at once"
        )
    )


def enqueue_advance(run_id: Pk) -> None:
    transaction.on_commit(lambda: _task("advance_run").delay(str(run_id)))


def enqueue_parent_resume(child_run_id: Pk) -> None:
    transaction.on_commit(lambda: _task("resume_parent").delay(str(child_run_id)))


def enqueue_refine(run_id: str, prompt: str, base_version: int, requested_by: str) -> None:
    transaction.on_commit(
        lambda: _task("refine_output").delay(run_id, prompt, base_version, requested_by)
    )
