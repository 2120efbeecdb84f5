"""Handing work to Celery once the transaction that created it has committed.

Long waits are rows with a `wake_at`, found by the reaper; only short ones also get a countdown,
so a restart or a broker flush never loses a timer.
"""

from __future__ import annotations

from django.db import transaction

MAX_COUNTDOWN_S = 60.0


def enqueue_step(step_id, countdown: float = 0.0) -> None:
    if countdown > MAX_COUNTDOWN_S:
        return
    from runs import tasks

    transaction.on_commit(
        lambda: tasks.execute_step.apply_async((str(step_id),), countdown=countdown or None)
    )


def enqueue_timer(step_id, countdown: float) -> None:
    if countdown > MAX_COUNTDOWN_S:
        return
    from runs import tasks

    transaction.on_commit(
        lambda: tasks.fire_timer.apply_async((str(step_id),), countdown=max(countdown, 0) or None)
    )


def enqueue_advance(run_id) -> None:
    from runs import tasks

    transaction.on_commit(lambda: tasks.advance_run.delay(str(run_id)))


def enqueue_parent_resume(child_run_id) -> None:
    from runs import tasks

    transaction.on_commit(lambda: tasks.resume_parent.delay(str(child_run_id)))
