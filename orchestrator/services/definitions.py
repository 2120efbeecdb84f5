"""Turning what a client sent (definition, markdown or the nodes/edges shorthand) into a
validated definition, and checking its references against the organization."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from core.domain_errors import InvalidRequest
from orchestrator.definition import DefinitionError, compile_markdown, validate_definition
from orchestrator.definition.markdown_export import to_markdown
from orchestrator.definition.nodes import model_problem
from orchestrator.models import Agent, Credential, Organization
from orchestrator.services import approver_refs, mcp_refs

SHORTHAND_KEYS = ("nodes", "edges", "inputs", "output", "output_type", "agents")


@dataclass
class ResolvedDefinition:
    definition: dict[str, Any]
    markdown: str = ""
    name: str = ""
    description: str = ""
    member_ids: list[str] = field(default_factory=list)


def _definition_error(exc: DefinitionError, prefix: str) -> InvalidRequest:
    fields: dict[str, list[str]] = {}
    for error in exc.errors:
        path = f"{prefix}.{error.path}" if prefix and error.path else (error.path or prefix or "$")
        fields.setdefault(path, []).append(error.message)
    first_path, messages = next(iter(fields.items()))
    count = sum(len(m) for m in fields.values())
    more = f" (and {count - 1} more problems, see fields)" if count > 1 else ""
    return InvalidRequest(
        f"The definition is invalid: {first_path}: {messages[0]}{more}", fields=fields
    )


def has_definition_source(data: dict[str, Any]) -> bool:
    return "definition" in data or "markdown" in data or "nodes" in data


def resolve(data: dict[str, Any], organization: Organization) -> ResolvedDefinition:
    """Validate whichever source the client used; exactly one must be present."""
    sources = [key for key in ("definition", "markdown", "nodes") if key in data]
    if len(sources) > 1:
        raise InvalidRequest(
            "Send one of definition, markdown or nodes/edges, not several.",
            fields={key: ["only one definition source is allowed"] for key in sources},
        )
    if not sources:
        raise InvalidRequest(
            "A definition is required: send definition, markdown, or nodes and edges.",
            fields={"definition": ["this field is required"]},
        )
    source = sources[0]
    if source == "markdown":
        resolved = _from_markdown(data["markdown"])
    elif source == "definition":
        resolved = ResolvedDefinition(definition=_validated(data["definition"], "definition"))
    else:
        shorthand = {key: data[key] for key in SHORTHAND_KEYS if key in data}
        shorthand.setdefault("edges", [])
        resolved = ResolvedDefinition(definition=_validated(shorthand, ""))
    resolved.member_ids = check_references(resolved.definition, organization)
    return resolved


def _validated(definition: Any, prefix: str) -> dict[str, Any]:
    try:
        return validate_definition(definition)
    except DefinitionError as exc:
        raise _definition_error(exc, prefix) from None


def _from_markdown(source: Any) -> ResolvedDefinition:
    if not isinstance(source, str):
        raise InvalidRequest(
            "markdown must be a string.", fields={"markdown": ["must be a string"]}
        )
    result = compile_markdown(source)
    if not result.valid:
        messages = [f"line {e['line']}: {e['message']}" for e in result.errors]
        raise InvalidRequest(
            f"The markdown does not compile: {messages[0]}", fields={"markdown": messages}
        )
    assert result.definition is not None  # a valid result carries its definition
    return ResolvedDefinition(
        definition=result.definition,
        markdown=source,
        name=result.name or "",
        description=result.description or "",
    )


def check_references(definition: dict[str, Any], organization: Organization) -> list[str]:
    """Agents, credentials and MCP servers named by nodes must exist in this organization, and
    the usernames named as approvers must be able to decide in it.

    Returns the ids of the organization's agents the nodes use (the orchestration's `members`).
    """
    local_agents = {agent["name"] for agent in definition.get("agents", [])}
    agent_refs: dict[str, list[str]] = {}
    credential_refs: dict[str, list[str]] = {}
    fields: dict[str, list[str]] = {}
    models = [
        (f"agents[{i}].model", a.get("model")) for i, a in enumerate(definition.get("agents", []))
    ]
    for index, node in enumerate(definition["nodes"]):
        config = node["config"]
        ref = config.get("agent")
        if node["type"] == "agent" and isinstance(ref, dict):
            models.append((f"nodes[{index}].config.agent.model", ref.get("model")))
        is_org_agent = isinstance(ref, str) and ref not in local_agents and ref != "default"
        if node["type"] == "agent" and is_org_agent:
            agent_refs.setdefault(ref, []).append(f"nodes[{index}].config.agent")
        credential = config.get("credential")
        if isinstance(ref, dict) and ref.get("credential"):
            credential_refs.setdefault(ref["credential"], []).append(
                f"nodes[{index}].config.agent.credential"
            )
        if isinstance(credential, str) and credential:
            credential_refs.setdefault(credential, []).append(f"nodes[{index}].config.credential")

    # Aliases are checked here, against the setting; `default` and aliases resolve at run time.
    for path, model in models:
        problem = model_problem(model, settings.MODEL_ALIASES) if model else None
        if problem:
            fields.setdefault(f"definition.{path}", []).append(problem)
    members: list[str] = []
    if agent_refs:
        agents = Agent.objects.filter(organization=organization)
        by_name = {a.name: str(a.id) for a in agents}
        by_id = set(by_name.values())
        for ref, paths in agent_refs.items():
            agent_id = ref if ref in by_id else by_name.get(ref)
            if agent_id is None:
                for path in paths:
                    fields.setdefault(f"definition.{path}", []).append(
                        f"no agent '{ref}' in this organization"
                    )
            elif agent_id not in members:
                members.append(agent_id)
    if credential_refs:
        credentials = Credential.objects.filter(organization=organization)
        known = {str(c.id) for c in credentials} | {c.name for c in credentials}
        for ref, paths in credential_refs.items():
            if ref not in known:
                for path in paths:
                    fields.setdefault(f"definition.{path}", []).append(
                        f"no credential '{ref}' in this organization"
                    )
    tool_lists = mcp_refs.definition_tool_lists(definition)
    approvers = approver_refs.step_approver_lists(definition)
    approvers += approver_refs.tool_approver_lists(tool_lists)
    for problems in (
        mcp_refs.tool_item_problems(organization, tool_lists),
        approver_refs.approver_problems(organization, approvers),
    ):
        for path, messages in problems.items():
            fields.setdefault(f"definition.{path}", []).extend(messages)
    if fields:
        first_path, messages = next(iter(fields.items()))
        raise InvalidRequest(f"{first_path}: {messages[0]}", fields=fields)
    return members


def render_markdown(name: str, description: str, definition: Any) -> dict[str, Any]:
    """The editor's markdown tab: a (validated) definition as a document, with what it omits."""
    markdown, warnings = to_markdown(name, description, _validated(definition, "definition"))
    return {"markdown": markdown, "warnings": warnings}
