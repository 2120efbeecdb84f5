"""The starter template catalog: `orchestrator/starters/*.md` compiled, checked and upserted.

The files are the truth. Each is a markdown definition preceded by a small front matter:

    ---
    category: Support
    tags: support, triage, approval
    trigger: schedule 0 8 * * 1-5
    timezone: UTC
    ---

`trigger` (repeatable) is `webhook`, `manual` or `schedule <5-field cron>`; instances start with
those triggers. A starter must compile without errors or compiler notes and be self-contained
(agents declared in the document, no credentials), so that it instantiates in any organization.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction

from core.types import Actor
from orchestrator.choices import TriggerKind
from orchestrator.definition import DefinitionError, compile_markdown, validate_definition
from orchestrator.models import Orchestration, Organization, StarterTemplate
from orchestrator.services.orchestrations import create_orchestration
from orchestrator.services.schedules import cron_problem, normalize_cron, zone_problem

STARTERS_DIR = Path(__file__).resolve().parent.parent / "starters"
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<meta>.*?)\n---[ \t]*\n", re.DOTALL)
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
META_KEYS = ("category", "tags", "trigger", "timezone")


class StarterError(Exception):
    """A starter file that cannot go into the catalog; the message names the file."""


@dataclass
class Starter:
    id: str
    name: str
    description: str
    category: str
    tags: list[str]
    markdown: str
    definition: dict[str, Any]
    triggers: list[dict[str, Any]] = field(default_factory=list)

    def row_values(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "tags": self.tags,
            "tag_index": tag_index(self.tags),
            "markdown": self.markdown,
            "definition": self.definition,
            "step_count": len(self.definition["nodes"]),
            "inputs": self.definition["inputs"],
            "triggers": self.triggers,
        }


def tag_index(tags: list[str]) -> str:
    return f",{','.join(tags)}," if tags else ""


def _front_matter(text: str, name: str) -> tuple[list[tuple[str, str]], str]:
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise StarterError(f"{name}: starts with no '---' front matter (category, tags)")
    pairs = []
    for number, line in enumerate(match["meta"].splitlines(), start=2):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep or key not in META_KEYS:
            raise StarterError(
                f"{name} line {number}: expected 'key: value' with a key among "
                f"{', '.join(META_KEYS)}"
            )
        pairs.append((key, value.strip()))
    return pairs, text[match.end() :]


def _trigger(value: str, timezone: str, name: str) -> dict[str, Any]:
    kind, _, rest = value.partition(" ")
    kind = kind.strip().lower()
    if kind in (TriggerKind.WEBHOOK, TriggerKind.MANUAL) and not rest.strip():
        return {"kind": kind}
    if kind == TriggerKind.SCHEDULE:
        cron = normalize_cron(rest)
        problem = cron_problem(cron)
        if problem:
            raise StarterError(f"{name}: cron '{cron}' {problem}")
        return {"kind": kind, "cron_expression": cron, "timezone": timezone}
    raise StarterError(f"{name}: trigger '{value}' is not webhook, manual or schedule <cron>")


def _self_contained(definition: dict[str, Any], name: str) -> None:
    declared = {agent["name"] for agent in definition["agents"]}
    for agent in definition["agents"]:
        if agent.get("credential"):
            raise StarterError(f"{name}: agent '{agent['name']}' names a credential")
    for node in definition["nodes"]:
        ref = node["config"].get("agent")
        if node["type"] == "agent" and isinstance(ref, str) and ref not in declared:
            raise StarterError(f"{name}: step '{node['id']}' uses an undeclared agent '{ref}'")
        if node["config"].get("credential"):
            raise StarterError(f"{name}: step '{node['id']}' names a credential")


def parse_starter(path: Path) -> Starter:
    """Read, compile and check one starter file; raises StarterError saying what is wrong."""
    name = path.name
    template_id = path.stem
    if not _SLUG.match(template_id):
        raise StarterError(f"{name}: the file name must be a slug (lowercase, digits, dashes)")
    meta, markdown = _front_matter(path.read_text(encoding="utf-8"), name)
    values = dict(meta)
    category = values.get("category", "")
    if not category:
        raise StarterError(f"{name}: the front matter needs a category")
    tags = [tag.strip().lower() for tag in values.get("tags", "").split(",") if tag.strip()]
    bad = [tag for tag in tags if not _TAG.match(tag)]
    if bad:
        raise StarterError(f"{name}: tags must be short slugs, not {bad[0]!r}")
    timezone = values.get("timezone", "UTC")
    problem = zone_problem(timezone)
    if problem:
        raise StarterError(f"{name}: {problem}")
    triggers = [_trigger(value, timezone, name) for key, value in meta if key == "trigger"]

    result = compile_markdown(markdown)
    if not result.valid:
        problems = "; ".join(f"line {e['line']}: {e['message']}" for e in result.errors)
        raise StarterError(f"{name} does not compile: {problems}")
    if result.compiler_notes:
        raise StarterError(f"{name}: compiler notes: {'; '.join(result.compiler_notes)}")
    try:
        definition = validate_definition(result.definition)
    except DefinitionError as exc:
        raise StarterError(f"{name}: invalid definition: {exc}") from None
    _self_contained(definition, name)
    return Starter(
        id=template_id,
        name=result.name or template_id,
        description=result.description,
        category=category,
        tags=list(dict.fromkeys(tags)),
        markdown=markdown,
        definition=definition,
        triggers=triggers,
    )


def read_catalog(directory: Path = STARTERS_DIR) -> list[Starter]:
    """Every starter of the folder, or StarterError listing every broken file at once."""
    starters, problems = [], []
    for path in sorted(directory.glob("*.md")):
        try:
            starters.append(parse_starter(path))
        except StarterError as exc:
            problems.append(str(exc))
    if problems:
        raise StarterError("\n".join(problems))
    return starters


@transaction.atomic
def load_starters(directory: Path = STARTERS_DIR) -> dict[str, int]:
    """Make the table match the folder: idempotent, and a row whose file is gone is removed."""
    starters = read_catalog(directory)
    existing = {row.pk: row for row in StarterTemplate.objects.all()}
    counts = {"created": 0, "updated": 0, "unchanged": 0, "removed": 0}
    for starter in starters:
        values = starter.row_values()
        row = existing.pop(starter.id, None)
        if row is None:
            StarterTemplate.objects.create(id=starter.id, **values)
            counts["created"] += 1
        elif any(getattr(row, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(row, key, value)
            row.save()
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    if existing:
        counts["removed"], _ = StarterTemplate.objects.filter(pk__in=list(existing)).delete()
    return counts


def instantiate(
    template: StarterTemplate, organization: Organization, *, name: str = "", user: Actor = None
) -> Orchestration:
    """A new draft orchestration from the template, with the template's triggers.

    The markdown is compiled again (not the stored definition copied) so the new orchestration
    keeps its markdown source for the editor's markdown tab.
    """
    return create_orchestration(
        organization,
        {
            "name": name or template.name,
            "markdown": template.markdown,
            "tags": list(template.tags),
            "metadata": {"template": template.pk},
            "triggers": [dict(trigger) for trigger in template.triggers],
        },
        user=user,
    )
