"""Celery tasks: thin wrappers that take ids and call services. Each is safe to run twice.

Each binds the ids it was given to the log context for its duration (the formatter adds them to
every line, see LOGGING in config.settings). A step's row id is `step_run_id`: `step_id` is the
node id, as in the API, and runs.services.execution binds it with `run_id` once the step is
claimed. The previous context comes back on exit, so an eager task run inside another keeps
the outer ids afterwards, and a worker process carries nothing over to its next task.
"""

from __future__ import annotations

from celery import shared_task
from structlog.contextvars import bound_contextvars

from runs.services import execution, firing, lifecycle, outputs, retention, timers


@shared_task(acks_late=True, reject_on_worker_lost=True)
def execute_step(step_run_id: str) -> None:
    with bound_contextvars(step_run_id=str(step_run_id)):
        execution.execute(step_run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def advance_run(run_id: str) -> None:
    with bound_contextvars(run_id=str(run_id)):
        lifecycle.advance(run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def fire_timer(step_run_id: str) -> None:
    with bound_contextvars(step_run_id=str(step_run_id)):
        timers.fire_timer(step_run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def resume_parent(child_run_id: str) -> None:
    with bound_contextvars(child_run_id=str(child_run_id)):
        timers.resume_parent_of(child_run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def refine_output(run_id: str, prompt: str, base_version: int, requested_by: str = "") -> None:
    with bound_contextvars(run_id=str(run_id)):
        outputs.perform_refine(run_id, prompt, base_version, requested_by)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def fire_schedule(trigger_id: str) -> None:
    with bound_contextvars(trigger_id=str(trigger_id)):
        firing.fire(trigger_id)


@shared_task
def reap() -> dict[str, int]:
    return timers.reap()


@shared_task
def prune_runs() -> dict[str, int]:
    return retention.prune()
