"""Plain Celery tasks for the baseline: the same workloads without the engine."""

from __future__ import annotations

import time

import redis
from celery import shared_task
from django.conf import settings


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


@shared_task(acks_late=True)
def noop(index: int) -> None:
    return None


@shared_task(acks_late=True)
def count(key: str) -> None:
    _redis().incr(key)


@shared_task(acks_late=True)
def stamp(key: str) -> None:
    """Count, and keep the first and last time a task ran, to time a drained queue."""
    store = _redis()
    now = time.time()
    store.setnx(f"{key}:first", now)
    store.set(f"{key}:last", now)
    store.incr(key)
