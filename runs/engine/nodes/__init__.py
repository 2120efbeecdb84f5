"""Executors of the node types that need a worker of their own. Transforms, delays, subflows
and human steps are moved on by the service layer without one."""

from __future__ import annotations

from collections.abc import Callable

from runs.engine.nodes.agent import run_agent
from runs.engine.nodes.base import StepContext, StepResult
from runs.engine.nodes.http import run_http

EXECUTORS: dict[str, Callable[[StepContext], StepResult]] = {
    "agent": run_agent,
    "http": run_http,
}

__all__ = ["EXECUTORS"]
