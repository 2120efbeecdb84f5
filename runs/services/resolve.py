"""Turning names in a definition into the plain objects the pure executors take."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from core import crypto
from core.lookups import by_id_or_name
from core.types import Pk
from orchestrator.choices import OrchestrationStatus
from orchestrator.definition.nodes import resolve_model, tool_approvals, tool_names
from orchestrator.definition.schema import inputs_json_schema
from orchestrator.models import Agent
from orchestrator.models import Credential as CredentialRow
from runs.engine.mcp import McpToolSource
from runs.engine.nodes.base import AgentSpec, Credential, NetPolicy, StepFailed
from runs.engine.pricing import Price
from runs.engine.tools import OrchestrationToolSource
from runs.models import Run
from runs.services import mcp_servers
from runs.services.subflows import target_orchestration


def _credential_row(organization_id: Pk, ref: str) -> CredentialRow | None:
    return by_id_or_name(CredentialRow.objects.filter(organization_id=organization_id), ref)


def credential(run: Run, ref: str | None) -> Credential | None:
    if not ref:
        return None
    row = _credential_row(run.organization_id, ref)
    if row is None:
        raise StepFailed(f"No credential '{ref}' in this organization.", retryable=False)
    return Credential(kind=row.kind, value=crypto.decrypt(row.encrypted_value))


# The setting (and environment variable) that holds each provider's key.
PROVIDER_KEY_SETTINGS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GOOGLE_API_KEY",
}


def provider_key(provider: str) -> str:
    """The API key a provider's models use when the agent names no credential ("" if unset)."""
    name = PROVIDER_KEY_SETTINGS.get(provider)
    return getattr(settings, name, "") if name else ""


def _spec(
    run: Run,
    data: dict[str, Any],
    name: str,
    script: list[Any] | None,
    output_schema: dict[str, Any] | None,
    step_tools: list[Any],
    with_tools: bool = True,
) -> AgentSpec:
    try:
        model = resolve_model(
            data.get("model") or "default",
            default_model=settings.DEFAULT_MODEL,
            aliases=settings.MODEL_ALIASES,
        )
    except ValueError as exc:
        raise StepFailed(f"the agent's model cannot be used: {exc}", retryable=False) from None
    api_key = ""
    if data.get("credential"):
        found = credential(run, data["credential"])
        api_key = found.value if found else ""
    else:
        api_key = provider_key(model.split("/", 1)[0])
    price = data.get("price") or None
    items = [*(data.get("tools") or ()), *step_tools] if with_tools else []
    sources = _tool_sources(run, items)
    orchestrations = _orchestration_tools(run, items)
    return AgentSpec(
        name=name,
        model=model,
        system_prompt=data.get("system_prompt") or "",
        tools=(
            *tool_names(items),
            *(tool for source in sources for tool in source.model_names()),
            *(source.name for source in orchestrations),
        ),
        tool_sources=sources,
        orchestrations=orchestrations,
        approvals={
            **tool_approvals(items),
            **{s.name: s.approval for s in orchestrations if s.approval is not None},
            **{
                name: source.approval
                for source in sources
                if source.approval is not None
                for name in source.model_names()
            },
        },
        temperature=data.get("temperature"),
        max_turns=data.get("max_turns"),
        max_tokens=data.get("max_tokens"),
        base_url=data.get("base_url") or "",
        api_key=api_key,
        price=Price(float(price.get("input_per_1k") or 0), float(price.get("output_per_1k") or 0))
        if price
        else None,
        script=tuple(script or data.get("script") or ()),
        output_schema=output_schema if output_schema is not None else data.get("output_schema"),
    )


def _tool_sources(run: Run, items: list[Any]) -> tuple[McpToolSource, ...]:
    """An agent's MCP items as the servers to call. Other items (an orchestration as a tool) are
    left to their own resolution."""
    return tuple(
        mcp_servers.tool_source(run.organization_id, item)
        for item in items
        if isinstance(item, dict) and "mcp" in item
    )


def _orchestration_tools(run: Run, items: list[Any]) -> tuple[OrchestrationToolSource, ...]:
    """An agent's orchestration items, each found in the run's organization (never another's):
    its declared inputs are the tool's arguments."""
    found = []
    for item in items:
        if not isinstance(item, dict) or "orchestration" not in item:
            continue
        ref = str(item["orchestration"])
        target = target_orchestration(run.organization_id, ref)
        if target is None:
            raise StepFailed(
                f"The agent's tool '{item.get('name')}' names the orchestration '{ref}', and "
                "there is no such orchestration in this organization.",
                retryable=False,
            )
        if target.status != OrchestrationStatus.ACTIVE:
            raise StepFailed(
                f"The agent's tool '{item.get('name')}' names the orchestration '{ref}', which "
                f"is {target.status}: only an active orchestration can be called as a tool.",
                retryable=False,
            )
        found.append(
            OrchestrationToolSource(
                name=str(item.get("name") or target.slug),
                description=str(item.get("description") or target.description or target.name),
                target_id=str(target.pk),
                input_schema=inputs_json_schema(target.definition.get("inputs", [])),
                approval=item.get("approval"),
            )
        )
    return tuple(found)


def agent(
    run: Run, definition: dict[str, Any], config: dict[str, Any], *, tools: bool = True
) -> AgentSpec:
    """An inline agent, one declared in the definition, or one of the organization's; without
    `tools` (a refine, which only rewrites), none of its tools are resolved or offered."""
    ref = config.get("agent")
    script = config.get("script") or None
    # The step's schema overrides its agent's.
    schema = config.get("output_schema")
    # The step's own tools are added to its agent's.
    step_tools = list(config.get("tools") or ())
    if isinstance(ref, dict):
        return _spec(run, ref, ref.get("name") or "inline", script, schema, step_tools, tools)
    for declared in definition.get("agents", []):
        if declared.get("name") == ref:
            return _spec(run, declared, ref, script, schema, step_tools, tools)
    if ref in (None, "default"):
        return _spec(run, {"model": "default"}, "default", script, schema, step_tools, tools)
    row = by_id_or_name(Agent.objects.filter(organization_id=run.organization_id), ref)
    if row is None:
        raise StepFailed(f"No agent '{ref}' in this organization.", retryable=False)
    data = {
        "model": row.model,
        "system_prompt": row.system_prompt,
        "tools": row.tools,
        "temperature": row.temperature,
        "max_turns": row.max_turns,
        "max_tokens": row.max_tokens,
        "base_url": row.base_url,
        "credential": str(row.credential_id) if row.credential_id else None,
        "price": row.price,
        "script": row.script,
        "output_schema": row.output_schema,
    }
    return _spec(run, data, row.name, script, schema, step_tools, tools)


def net_policy() -> NetPolicy:
    return NetPolicy(
        allowed_networks=tuple(settings.HTTP_ALLOWED_NETWORKS),
        max_response_bytes=settings.HTTP_MAX_RESPONSE_BYTES,
    )
