"""LLM providers behind one call: `complete(spec, messages, tools, ...) -> Completion`."""

from __future__ import annotations

from runs.engine.nodes.base import AgentSpec, StepFailed
from runs.engine.providers import builtin, openai_compatible
from runs.engine.providers.types import Completion, Provider

# Valid model names whose native clients are not in this version yet: a step using one fails
# with a sentence, before any call.
NOT_YET_AVAILABLE = ("anthropic", "google")


def provider_for(spec: AgentSpec) -> Provider:
    if spec.model.startswith("builtin/"):
        return builtin.complete
    if spec.model.startswith("openai/"):
        return openai_compatible.complete
    provider = spec.model.split("/", 1)[0]
    if provider in NOT_YET_AVAILABLE:
        raise StepFailed(
            f"the {provider} provider is not available yet in this version: use an openai/ "
            "model (or an OpenAI-compatible server through base_url) or a builtin/ one",
            retryable=False,
        )
    raise StepFailed(f"unknown model provider in '{spec.model}'", retryable=False)


__all__ = ["Completion", "Provider", "provider_for"]
