"""Plain Celery tasks for the baseline: the same workloads without the engine.

A chord needs a result backend, which the project does not use (its tasks ignore results): the
baseline's processes, and only they (the bench and its workers import this module), store the
results of these tasks in Redis.
"""

from __future__ import annotations

import time

import httpx
import redis
from asgiref.sync import async_to_sync
from celery import current_app, shared_task
from django.conf import settings
from pydantic_ai import Agent

from runs.engine import llm
from runs.engine.netguard import tls_context
from runs.engine.nodes.base import AgentSpec

current_app.conf.result_backend = settings.REDIS_URL


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


@shared_task(acks_late=True, ignore_result=False)
def noop(index: int) -> None:
    return None


@shared_task(acks_late=True, ignore_result=False)
def fetch(url: str) -> int:
    """What an `http` step does on the wire: one GET, a new client each time, with the TLS context
    the engine's clients share: a client that builds its own loads the CA bundle, tens of
    milliseconds a call that the engine does not pay."""
    with httpx.Client(timeout=10, trust_env=False, verify=tls_context()) as client:
        return client.get(url).status_code


@shared_task(acks_late=True, ignore_result=False)
def echo(index: int) -> str:
    """What a `builtin/echo` agent step does without the engine: one pydantic-ai agent run of the
    same streaming model, its answer read as it streams."""
    agent = Agent(llm.builtin_model(AgentSpec(name="echo", model="builtin/echo")))

    async def answer() -> str:
        async with agent.run_stream(f"step w{index}") as streamed:
            async for _ in streamed.stream_text(delta=True):
                pass
            return await streamed.get_output()

    return async_to_sync(answer)()


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
