"""Executors of the node types, keyed by the type names `orchestrator.definition.NODE_TYPES`
declares. A type whose `runs_on` is "worker" has an entry in `EXECUTORS` (run by a worker of its
own); one that runs "inline" has one in `INLINE_EXECUTORS` (run in the state change that starts
the step). Delays, subflows and people's steps are moved on by the service layer without one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runs.engine.nodes.agent import run_agent
from runs.engine.nodes.base import StepContext, StepResult
from runs.engine.nodes.http import run_http
from runs.engine.nodes.transform import run_transform

EXECUTORS: dict[str, Callable[[StepContext], StepResult]] = {
    "agent": run_agent,
    "http": run_http,
}
# (config, run context) -> (the step's recorded input, its output)
INLINE_EXECUTORS: dict[
    str, Callable[[dict[str, Any], dict[str, Any]], tuple[dict[str, Any], Any]]
] = {
    "transform": run_transform,
}

__all__ = ["EXECUTORS", "INLINE_EXECUTORS"]
