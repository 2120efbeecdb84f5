"""The one way orchestrations change: create, update (with If-Match), version, delete, restore.

Each function runs in a transaction and locks the orchestration row, so two editors holding the
same ETag cannot both win.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any, NoReturn

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from core.domain_errors import Conflict, InvalidRequest, NotFound, VersionConflict
from core.tenancy import ServiceAccount
from core.types import Actor, Pk
from orchestrator.choices import OrchestrationStatus
from orchestrator.definition import diff_definitions
from orchestrator.models import (
    Orchestration,
    OrchestrationTag,
    OrchestrationVersion,
    Organization,
)
from orchestrator.services import definitions, schedules, triggers

# What a version snapshots: a change to any of these adds a version.
VERSIONED_FIELDS = ("name", "description", "settings", "metadata", "definition", "markdown")
PLAIN_FIELDS = (
    "icon",
    "icon_color",
    "zone",
    "group",
    "owner",
    "is_public",
    "public_definition",
    "credit_limit",
    "status",
)
DEFAULT_SETTINGS = {
    "max_concurrent_runs": None,
    "run_timeout_s": None,
    "max_subflow_depth": 5,
    "budget_action": "fail",
}


def new_etag() -> str:
    return uuid.uuid4().hex[:20]


def normalize_etag(value: str) -> str:
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def etag_matches(orchestration: Orchestration, if_match: str) -> bool:
    candidates = [normalize_etag(part) for part in if_match.split(",")]
    return "*" in candidates or orchestration.etag in candidates


def unique_slug(organization: Organization, base: str, *, exclude: uuid.UUID | None = None) -> str:
    root = (slugify(base) or "orchestration")[:100]
    taken = set(
        Orchestration.objects.alive()
        .filter(organization=organization, slug__startswith=root)
        # django-stubs refuses None here; Django reads it as IS NULL, which excludes nothing.
        .exclude(pk=exclude)  # type: ignore[misc]
        .values_list("slug", flat=True)
    )
    if root not in taken:
        return root
    counter = 2
    while f"{root}-{counter}" in taken:
        counter += 1
    return f"{root}-{counter}"


def _check_slug_free(organization: Organization, slug: str, exclude: Pk | None = None) -> None:
    clash = Orchestration.objects.alive().filter(organization=organization, slug=slug)
    if exclude is not None:
        clash = clash.exclude(pk=exclude)
    if clash.exists():
        raise InvalidRequest(
            f"The slug '{slug}' is already used by another orchestration.",
            fields={"slug": ["already used in this organization"]},
        )


def _set_tags(orchestration: Orchestration, tags: list[str]) -> None:
    orchestration.tag_rows.all().delete()
    OrchestrationTag.objects.bulk_create(
        OrchestrationTag(orchestration=orchestration, name=tag, position=index)
        for index, tag in enumerate(tags)
    )


def _summary(before: dict[str, Any] | None, after: Orchestration, changed: list[str]) -> str:
    if before is None:
        return "Created"
    parts = []
    if "definition" in changed:
        diff = diff_definitions(before["definition"], after.definition)
        nodes = diff["nodes"]
        counts = [
            f"+{len(nodes['added'])} nodes" if nodes["added"] else "",
            f"-{len(nodes['removed'])} nodes" if nodes["removed"] else "",
            f"{len(nodes['changed'])} nodes changed" if nodes["changed"] else "",
        ]
        detail = ", ".join(c for c in counts if c) or "edges or output changed"
        parts.append(f"definition ({detail})")
    parts.extend(field for field in changed if field not in ("definition", "markdown"))
    return ("Changed " + ", ".join(parts)) if parts else "Saved without changes"


def _snapshot(orchestration: Orchestration) -> dict[str, Any]:
    return {field: getattr(orchestration, field) for field in VERSIONED_FIELDS}


def _record_version(
    orchestration: Orchestration, user: User | None, summary: str
) -> OrchestrationVersion:
    return OrchestrationVersion.objects.create(
        orchestration=orchestration,
        version=orchestration.version,
        etag=orchestration.etag,
        summary=summary[:500],
        created_by=user,
        **_snapshot(orchestration),
    )


def _user_or_none(user: Actor) -> User | None:
    if user is None or isinstance(user, AnonymousUser | ServiceAccount):
        return None
    return user if user.pk else None


@transaction.atomic
def create_orchestration(
    organization: Organization, data: dict[str, Any], *, user: Actor = None
) -> Orchestration:
    resolved = definitions.resolve(data, organization)
    name = data.get("name") or resolved.name
    if not name:
        raise InvalidRequest("name is required.", fields={"name": ["this field is required"]})
    if data.get("slug"):
        _check_slug_free(organization, data["slug"])
        slug = data["slug"]
    else:
        slug = unique_slug(organization, name)
    orchestration = Orchestration(
        organization=organization,
        slug=slug,
        name=name,
        description=data.get("description", resolved.description),
        metadata=data.get("metadata", {}),
        settings={**DEFAULT_SETTINGS, **data.get("settings", {})},
        definition=resolved.definition,
        markdown=resolved.markdown,
        step_count=len(resolved.definition["nodes"]),
        member_ids=resolved.member_ids,
        etag=new_etag(),
        created_by=_user_or_none(user),
        owner=data.get("owner", _user_or_none(user)),
        forked_from=data.get("forked_from"),
    )
    for field in PLAIN_FIELDS:
        if field in data and field != "owner":
            setattr(orchestration, field, data[field])
    orchestration.save()
    _set_tags(orchestration, data.get("tags", []))
    _record_version(orchestration, _user_or_none(user), "Created")
    # Signing secrets are shown once, in the answer to this request: keep them for the view.
    orchestration.new_trigger_secrets = {}
    for index, trigger_data in enumerate(data.get("triggers", [])):
        trigger = triggers.create_trigger(orchestration, trigger_data, where=f"triggers[{index}]")
        if trigger.signing_secret:
            orchestration.new_trigger_secrets[str(trigger.pk)] = trigger.signing_secret
    return orchestration


def _locked(orchestration: Orchestration) -> Orchestration:
    return Orchestration.objects.alive().select_for_update().filter(
        pk=orchestration.pk
    ).first() or _gone(orchestration)


def _gone(orchestration: Orchestration) -> NoReturn:
    raise Conflict(f"Orchestration {orchestration.pk} was deleted meanwhile.")


def _apply(current: Orchestration, data: dict[str, Any], *, replace: bool) -> None:
    """Set `data` onto `current` as a PUT (`replace`) or a PATCH does, checking the definition
    source and the slug (InvalidRequest); saves nothing, tags aside."""
    organization = current.organization
    if definitions.has_definition_source(data):
        resolved = definitions.resolve(data, organization)
        current.definition = resolved.definition
        current.markdown = resolved.markdown
        current.step_count = len(resolved.definition["nodes"])
        current.member_ids = resolved.member_ids
        if replace and "name" not in data and resolved.name:
            data = {**data, "name": resolved.name}
        if replace and "description" not in data:
            data = {**data, "description": resolved.description}
    elif replace:
        raise InvalidRequest(
            "PUT replaces the definition: send definition, markdown, or nodes and edges.",
            fields={"definition": ["this field is required"]},
        )

    if replace:
        if not data.get("name"):
            raise InvalidRequest("name is required.", fields={"name": ["this field is required"]})
        current.name = data["name"]
        current.description = data.get("description", "")
        current.settings = {**DEFAULT_SETTINGS, **data.get("settings", {})}
        current.metadata = data.get("metadata", {})
    else:
        for field in ("name", "description", "metadata"):
            if field in data:
                setattr(current, field, data[field])
        if "settings" in data:
            current.settings = {**DEFAULT_SETTINGS, **current.settings, **data["settings"]}

    if "slug" in data and data["slug"] != current.slug:
        _check_slug_free(organization, data["slug"], exclude=current.pk)
        current.slug = data["slug"]
    for field in PLAIN_FIELDS:
        if field in data:
            setattr(current, field, data[field])


def check_update(orchestration: Orchestration, data: dict[str, Any]) -> None:
    """Raise what `update_orchestration` would raise for this PATCH, changing nothing: the
    admin's form shows it as form errors before it saves through the same service."""
    _apply(copy.copy(orchestration), data, replace=False)


@transaction.atomic
def update_orchestration(
    orchestration: Orchestration,
    data: dict[str, Any],
    *,
    if_match: str,
    replace: bool,
    user: Actor = None,
) -> Orchestration:
    """PUT (`replace`) resets the versioned fields it was not given; PATCH changes only what it got.

    A PUT always records a version, because a client that replaces the whole thing expects
    one; a PATCH records one only when a versioned field actually changed.
    """
    current = _locked(orchestration)
    if not etag_matches(current, if_match):
        raise VersionConflict(
            f'If-Match {if_match} does not match the current ETag "{current.etag}" '
            f"(version {current.version}): reload, merge your change and send it again."
        )
    before = _snapshot(current)
    _apply(current, data, replace=replace)
    if "tags" in data:
        _set_tags(current, data["tags"])

    changed = [field for field in VERSIONED_FIELDS if getattr(current, field) != before[field]]
    current.etag = new_etag()
    if replace or changed:
        current.version += 1
        current.save()
        _record_version(current, _user_or_none(user), _summary(before, current, changed))
    else:
        current.save()
    return current


@transaction.atomic
def set_status(orchestration: Orchestration, status: str) -> Orchestration:
    current = _locked(orchestration)
    if current.status != status:
        current.status = status
        current.etag = new_etag()
        current.save(update_fields=["status", "etag", "updated_at"])
    schedules.sync_orchestration(current)
    return current


def activate(orchestration: Orchestration) -> Orchestration:
    return set_status(orchestration, OrchestrationStatus.ACTIVE)


def pause(orchestration: Orchestration) -> Orchestration:
    return set_status(orchestration, OrchestrationStatus.PAUSED)


@transaction.atomic
def soft_delete(orchestration: Orchestration) -> None:
    """Runs in progress go on; new runs are refused because the row is no longer alive."""
    current = _locked(orchestration)
    current.deleted_at = timezone.now()
    current.etag = new_etag()
    current.save(update_fields=["deleted_at", "etag", "updated_at"])
    schedules.sync_orchestration(current)


@transaction.atomic
def purge(orchestration: Orchestration) -> None:
    for trigger in orchestration.triggers.all():
        schedules.remove(trigger)
    Orchestration.objects.filter(pk=orchestration.pk).delete()


@transaction.atomic
def restore_version(
    orchestration: Orchestration, number: int, *, user: Actor = None
) -> Orchestration:
    current = _locked(orchestration)
    source = current.versions.filter(version=number).first()
    if source is None:
        raise InvalidRequest(f"There is no version {number}.")
    resolved = definitions.check_references(source.definition, current.organization)
    before = _snapshot(current)
    for field in VERSIONED_FIELDS:
        setattr(current, field, getattr(source, field))
    current.step_count = len(source.definition.get("nodes", []))
    current.member_ids = resolved
    current.version += 1
    current.etag = new_etag()
    current.save()
    changed = [field for field in VERSIONED_FIELDS if getattr(current, field) != before[field]]
    summary = f"Restored version {number}" + (f" ({', '.join(changed)})" if changed else "")
    _record_version(current, _user_or_none(user), summary)
    return current


def diff_versions(orchestration: Orchestration, a: int, b: int) -> dict[str, Any]:
    # Two exact lookups rather than `version__in`: Django turns an exact lookup on a number
    # beyond the column's range into "no row", while `IN` passes it to the driver (SQLite
    # raises OverflowError on /versions/1/diff/99999999999999999999).
    versions = {v.version: v for v in orchestration.versions.filter(Q(version=a) | Q(version=b))}
    missing = [n for n in (a, b) if n not in versions]
    if missing:
        raise NotFound(f"There is no version {missing[0]} of this orchestration.")
    before, after = versions[a], versions[b]
    changed_fields = [
        field
        for field in ("name", "description", "settings", "metadata")
        if getattr(before, field) != getattr(after, field)
    ]
    return {
        "from_version": a,
        "to_version": b,
        "fields_changed": changed_fields,
        **diff_definitions(before.definition, after.definition),
    }
