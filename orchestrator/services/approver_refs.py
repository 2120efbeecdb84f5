"""Checking, when a definition or a library agent is saved, that the usernames it names as
approvers can decide.

Deciding takes the editor role in the organization, and an approval with `approvers` refuses
everyone else: a gate that names a misspelt username, someone of another organization or a
viewer waits for a decision no one can give until it times out (a week by default). The
definition package checks that `approvers` is a list of strings (it reads no rows); this is the
organization's half, as for agents, credentials and MCP servers. A member who leaves later (or
a service account whose token is revoked) is not caught here: their gates then take the
timeout's course.
"""

from __future__ import annotations

from typing import Any

from core.choices import Role
from core.tenancy import service_account_username
from orchestrator.models import ApiToken, Membership, Organization

DECIDING_ROLES = (Role.EDITOR, Role.ADMIN)


def step_approver_lists(definition: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The usernames a definition's approval steps name (`approvers`, `escalate_to`), with their
    paths."""
    lists = []
    for index, node in enumerate(definition.get("nodes", [])):
        if node.get("type") != "approval":
            continue
        config = node.get("config") or {}
        for key in ("approvers", "escalate_to"):
            if config.get(key):
                lists.append((f"nodes[{index}].config.{key}", config[key]))
    return lists


def tool_approver_lists(tool_lists: list[tuple[str, list[Any]]]) -> list[tuple[str, list[str]]]:
    """The approvers of each gated item of these tool lists (each with the path of its list)."""
    lists = []
    for path, tools in tool_lists:
        for index, item in enumerate(tools or []):
            approval = item.get("approval") if isinstance(item, dict) else None
            if isinstance(approval, dict) and approval.get("approvers"):
                lists.append((f"{path}[{index}].approval.approvers", approval["approvers"]))
    return lists


def approver_problems(
    organization: Organization, lists: list[tuple[str, list[str]]]
) -> dict[str, list[str]]:
    """Problems by JSON path: each username that is not an active editor or admin here, nor a
    service account with an unrevoked editor or admin token here."""
    if not any(usernames for _path, usernames in lists):
        return {}
    # Everyone who may decide here, rather than the names sent looked up: a definition may name
    # more usernames than a statement may carry parameters, an organization has few deciders.
    deciders = set(
        Membership.objects.filter(
            organization=organization, role__in=DECIDING_ROLES, user__is_active=True
        ).values_list("user__username", flat=True)
    ) | {
        service_account_username(name)
        for name in ApiToken.objects.usable()
        .filter(organization=organization, user__isnull=True, role__in=DECIDING_ROLES)
        .values_list("service_account", flat=True)
    }
    problems: dict[str, list[str]] = {}
    for path, usernames in lists:
        for name in usernames:
            if name not in deciders:
                problems.setdefault(path, []).append(
                    f"'{name}' cannot decide here: not an editor or admin of this organization"
                )
    return problems
