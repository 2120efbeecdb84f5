"""Celery tasks: thin wrappers that take ids and call services. Each is safe to run twice."""

from __future__ import annotations

from celery import shared_task

from orchestrator.services import schedules
from runs.services import execution, lifecycle, outputs, timers


@shared_task(acks_late=True, reject_on_worker_lost=True)
def execute_step(step_id: str) -> None:
    execution.execute(step_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def advance_run(run_id: str) -> None:
    lifecycle.advance(run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def fire_timer(step_id: str) -> None:
    timers.fire_timer(step_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def resume_parent(child_run_id: str) -> None:
    timers.resume_parent_of(child_run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def refine_output(run_id: str, prompt: str, base_version: int, requested_by: str = "") -> None:
    outputs.perform_refine(run_id, prompt, base_version, requested_by)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def fire_schedule(trigger_id: str) -> None:
    schedules.fire(trigger_id)


@shared_task
def reap() -> dict[str, int]:
    return timers.reap()
