"""The public gallery: what a public orchestration shows to anyone, and forking it.

A public orchestration leaves its organization, so what is shown and copied is a *portable*
definition: no credential references (their ids mean nothing elsewhere and say too much),
no secret in any URL or header anywhere in it (see `gallery.scrub`, also applied to the
description), no approver usernames (they say who works there, and no one
of a forking organization could decide a gate that names them: a fork's gates go to any of
its editors), agents the organization keeps in its library copied in as declared agents, so
a fork runs in the organization that made it, and sub-orchestrations named by slug rather
than by id (an id only resolves in its own organization; a fork's subflow runs the
orchestration of that slug in the forking one).
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet

from core.domain_errors import NotFound
from core.types import Actor, Pk
from gallery.scrub import scrub_secrets, scrub_text
from orchestrator.definition import validate_definition
from orchestrator.models import Agent, Orchestration, Organization
from orchestrator.services import mcp_refs
from orchestrator.services.orchestrations import create_orchestration


def public_orchestrations() -> QuerySet[Orchestration]:
    return (
        Orchestration.objects.alive()
        .filter(is_public=True)
        .select_related("organization")
        .prefetch_related("tag_rows")
    )


def public_orchestration(key: str) -> Orchestration:
    """The public orchestration with this id; 404 for anything else, public or not."""
    try:
        pk = uuid.UUID(str(key))
    except ValueError:
        raise NotFound(f"No public orchestration '{key}'.") from None
    found = public_orchestrations().filter(pk=pk).first()
    if found is None:
        raise NotFound(f"No public orchestration '{key}'.")
    return found


def _strip_references(config: dict[str, Any]) -> None:
    config.pop("credential", None)
    for key in ("approvers", "escalate_to"):
        if key in config:
            config[key] = []


def _library_agent(row: Agent, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": row.description,
        "model": row.model,
        "system_prompt": row.system_prompt,
        "tools": copy.deepcopy(row.tools or []),
        "temperature": row.temperature,
        "max_turns": row.max_turns,
        "max_tokens": row.max_tokens,
        "base_url": row.base_url,
        "price": dict(row.price or {}),
        "script": list(row.script or []),
    }


def _free_name(name: str, taken: set[str]) -> str:
    candidate, counter = name, 2
    while candidate in taken:
        candidate, counter = f"{name}-{counter}", counter + 1
    taken.add(candidate)
    return candidate


def library_agents(organization_ids: set[uuid.UUID]) -> dict[uuid.UUID, list[Agent]]:
    """The library agents of several organizations in one query, for a page of definitions."""
    library: dict[uuid.UUID, list[Agent]] = {org_id: [] for org_id in organization_ids}
    for row in Agent.objects.filter(organization_id__in=organization_ids):
        library[row.organization_id].append(row)
    return library


def portable_definition(
    orchestration: Orchestration, library: list[Agent] | None = None
) -> dict[str, Any]:
    """The definition as it may be shown to and copied by anyone (see the module docstring).

    `library` is the organization's agents when the caller has them already (a list page).
    """
    definition = copy.deepcopy(orchestration.definition)
    agents = definition.setdefault("agents", [])
    for agent in agents:
        agent.pop("credential", None)
    declared = {agent["name"] for agent in agents}
    library_refs = {
        node["config"]["agent"]
        for node in definition["nodes"]
        if node["type"] == "agent"
        and isinstance(node["config"].get("agent"), str)
        and node["config"]["agent"] not in declared
        and node["config"]["agent"] != "default"
    }
    copied: dict[str, str] = {}
    if library_refs:
        if library is None:
            library = list(Agent.objects.filter(organization_id=orchestration.organization_id))
        for row in library:
            refs = {str(row.pk), row.name} & library_refs
            if refs:
                name = _free_name(row.name, declared)
                agents.append(_library_agent(row, name))
                copied.update(dict.fromkeys(refs, name))
    _subflows_by_slug(definition, orchestration.organization_id)
    for node in definition["nodes"]:
        config = node["config"]
        _strip_references(config)
        ref = config.get("agent")
        if isinstance(ref, dict):
            ref.pop("credential", None)
        elif ref in library_refs:
            # An agent the library no longer has: the fork uses its own default model.
            config["agent"] = copied.get(ref, "default")
    for _path, tools in mcp_refs.definition_tool_lists(definition):
        for item in tools:
            # A tool's approvers are usernames too, like an approval step's.
            approval = item.get("approval") if isinstance(item, dict) else None
            if isinstance(approval, dict) and "approvers" in approval:
                approval["approvers"] = []
    scrubbed: dict[str, Any] = scrub_secrets(definition)
    return scrubbed


def public_description(orchestration: Orchestration) -> str:
    """The description as the gallery shows it and a fork copies it: its URLs scrubbed like
    the definition's."""
    return scrub_text(orchestration.description)


def _subflows_by_slug(definition: dict[str, Any], organization_id: Pk) -> None:
    refs: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for node in definition["nodes"]:
        if node["type"] != "subflow":
            continue
        try:
            refs.setdefault(uuid.UUID(str(node["config"].get("orchestration"))), []).append(node)
        except ValueError:
            continue  # a slug or a template already
    if not refs:
        return
    slugs = Orchestration.objects.filter(organization_id=organization_id, pk__in=refs).values_list(
        "pk", "slug"
    )
    for pk, slug in slugs:
        for node in refs[pk]:
            node["config"]["orchestration"] = slug


@transaction.atomic
def fork(key: str, organization: Organization, *, user: Actor = None) -> Orchestration:
    """A draft copy in `organization`; only a public orchestration with a public definition
    can be forked (anything else is a 404: whether it exists is not for others to know)."""
    source = public_orchestration(key)
    if not source.public_definition:
        raise NotFound(f"No public orchestration '{key}' with a public definition.")
    forked = create_orchestration(
        organization,
        {
            "name": source.name,
            "description": public_description(source),
            "icon": source.icon,
            "icon_color": source.icon_color,
            "tags": [tag.name for tag in source.tag_rows.all()],
            "settings": dict(source.settings or {}),
            "definition": validate_definition(portable_definition(source)),
            "forked_from": source,
        },
        user=user,
    )
    Orchestration.objects.filter(pk=source.pk).update(fork_count=F("fork_count") + 1)
    return forked
