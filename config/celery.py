"""The Celery app. Its settings come from config.settings (CELERY_*), like every other process."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from celery.signals import (
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
)
from django.db import close_old_connections

from config import tracing
from config.startup import freeze_loaded_objects

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("orchestrator")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def recycle_database_connections(sender: Task | None = None, **kwargs: Any) -> None:
    """Treat a task like a web request: keep a worker's database connection for CONN_MAX_AGE
    and drop it when it broke or aged out. Celery's own Django fixup would close it around every
    task instead (CELERY_DB_REUSE_MAX turns that off), and a new PostgreSQL session per task
    cost more than the engine's whole transaction for a run of inline steps."""
    if sender is not None and getattr(sender.request, "is_eager", False):
        return  # an eager task runs inside the caller's transaction and connection
    close_old_connections()


@worker_ready.connect
@worker_process_init.connect
def freeze_after_start(**kwargs: Any) -> None:
    """Each pool process once it has started (and the main process, which runs the tasks of a
    solo or threads pool): see config.startup."""
    freeze_loaded_objects()


@worker_process_shutdown.connect
def export_buffered_spans(**kwargs: Any) -> None:
    """A pool process leaves through os._exit, which skips the exporter's own flush at exit."""
    tracing.shutdown()
