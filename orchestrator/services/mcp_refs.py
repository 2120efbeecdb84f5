"""Checking, when a definition or a library agent is saved, that its MCP tool items name a server
of the organization and tools that server lists.

The definition package checks an item's shape only (it reads no rows); this is the organization's
half, as for agents and credentials. A registered server is checked against the tools it listed
when it was registered or last refreshed; an operator's stdio server (MCP_STDIO_SERVERS) has no
stored listing, and saving never starts a process, so only its name is checked.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings

from core.domain_errors import InvalidRequest
from orchestrator.definition.checks import Checker
from orchestrator.definition.errors import Problems
from orchestrator.definition.nodes import (
    duplicate_tool_name,
    model_tool_name,
    tool_items,
    tool_names,
)
from orchestrator.models import McpServer, Organization
from orchestrator.services.approver_refs import approver_problems, tool_approver_lists

# Stdio servers have no row; their ids are derived from their names, the same in every process.
STDIO_NAMESPACE = uuid.UUID("0f6f1a52-3c1e-4b7e-9a53-6d2f3b1c9e70")


def stdio_server_id(name: str) -> uuid.UUID:
    return uuid.uuid5(STDIO_NAMESPACE, name)


def _stdio_names() -> dict[str, str]:
    """Each stdio server's name and id, to its name."""
    names: dict[str, str] = {}
    for name in settings.MCP_STDIO_SERVERS:
        names[name] = name
        names[str(stdio_server_id(name))] = name
    return names


def tool_item_problems(
    organization: Organization, tool_lists: list[tuple[str, list[Any]]]
) -> dict[str, list[str]]:
    """Problems by JSON path for the `mcp` items of these tool lists (each with the path of its
    list): a server that is not the organization's, a tool it does not list."""
    items = [
        (f"{path}[{index}]", item)
        for path, tools in tool_lists
        for index, item in enumerate(tools or [])
        if isinstance(item, dict) and isinstance(item.get("mcp"), str)
    ]
    if not items:
        return {}
    rows = list(McpServer.objects.filter(organization=organization))
    by_ref = {str(row.id): row for row in rows} | {row.name: row for row in rows}
    stdio = _stdio_names()
    problems: dict[str, list[str]] = {}
    # The names the model would see, per tool list: the items' own (built-in tools,
    # orchestrations; the definition package refuses two of one name among them), then each
    # server's, as it listed them.
    named = {
        list_path: set(tool_names(tools))
        | {
            str(item.get("name"))
            for item in tools or []
            if isinstance(item, dict) and "orchestration" in item
        }
        for list_path, tools in tool_lists
    }
    for path, item in items:
        ref = item["mcp"]
        row = by_ref.get(ref)
        if row is None:
            if ref not in stdio:
                problems.setdefault(f"{path}.mcp", []).append(
                    f"no MCP server '{ref}' in this organization"
                )
            continue
        listed = [tool.get("name") for tool in row.tools or [] if isinstance(tool, dict)]
        for index, name in enumerate(item.get("tools") or []):
            if name not in listed:
                problems.setdefault(f"{path}.tools[{index}]", []).append(
                    f"the MCP server '{row.name}' lists no tool '{name}' (refresh the server "
                    "if its tools have changed)"
                )
        names = named[path.rsplit("[", 1)[0]]
        # Without `tools`, all the server lists; `[]` offers none.
        for name in listed if item.get("tools") is None else item["tools"]:
            if not isinstance(name, str) or name not in listed:
                continue
            if model_tool_name(name) in names:
                problems.setdefault(f"{path}.mcp", []).append(
                    f"{duplicate_tool_name(model_tool_name(name))} (name fewer tools of the "
                    f"MCP server '{row.name}' in the item's `tools`)"
                )
            names.add(model_tool_name(name))
    return problems


def definition_tool_lists(definition: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """Every tool list of a definition, with its path: its agents', its steps' inline agents',
    its agent steps' own."""
    lists = [
        (f"agents[{index}].tools", agent.get("tools") or [])
        for index, agent in enumerate(definition.get("agents", []))
    ]
    for index, node in enumerate(definition.get("nodes", [])):
        if node.get("type") != "agent":
            continue
        config = node.get("config") or {}
        if isinstance(config.get("agent"), dict):
            lists.append((f"nodes[{index}].config.agent.tools", config["agent"].get("tools") or []))
        if config.get("tools"):
            lists.append((f"nodes[{index}].config.tools", config["tools"]))
    return lists


def validated_tools(organization: Organization, tools: Any) -> list[Any]:
    """A library agent's `tools`: the definition's rules for an item's shape, then the
    organization's servers and their tools, and the approvers of gated items. InvalidRequest
    names each problem's JSON path."""
    problems = Problems()
    normalized = tool_items(tools, "tools", Checker(problems))
    fields: dict[str, list[str]] = {}
    for error in problems.errors:
        fields.setdefault(error.path, []).append(error.message)
    if not fields:
        tool_lists = [("tools", normalized)]
        fields = tool_item_problems(organization, tool_lists) | approver_problems(
            organization, tool_approver_lists(tool_lists)
        )
    if fields:
        first_path, messages = next(iter(fields.items()))
        raise InvalidRequest(f"{first_path}: {messages[0]}", fields=fields)
    return normalized
