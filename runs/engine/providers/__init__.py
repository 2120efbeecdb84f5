"""LLM providers behind one call: `complete(spec, messages, tools, ...) -> Completion`."""

from __future__ import annotations

from runs.engine.nodes.base import AgentSpec, StepFailed
from runs.engine.providers import builtin, openai_compatible
from runs.engine.providers.types import Completion, Provider


def provider_for(spec: AgentSpec) -> Provider:
    if spec.model.startswith("builtin/"):
        return builtin.complete
    if spec.model.startswith("openai/"):
        return openai_compatible.complete
    raise StepFailed(f"unknown model provider in '{spec.model}'", retryable=False)


__all__ = ["Completion", "Provider", "provider_for"]
