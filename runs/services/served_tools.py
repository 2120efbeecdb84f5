"""The org's active orchestrations as MCP tools (served at /mcp): what is listed, and firing one.

A tool is an orchestration: named by its slug, described by its description, its input schema
the declared inputs. A call fires a run through `lifecycle.fire`, as the runs API does, under the
caller's token (its role, its identity as the run's requester and idempotency scope).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from core.choices import Role
from core.domain_errors import Forbidden, NotFound
from core.tenancy import Tenant
from core.types import Actor, Pk
from orchestrator.choices import OrchestrationStatus
from orchestrator.definition.checks import unstorable_path
from orchestrator.definition.schema import inputs_json_schema
from orchestrator.models import Orchestration, Organization
from runs.engine import RUN_TERMINAL, RunStatus
from runs.models import Run, TriggerKind
from runs.services import lifecycle


@dataclass(frozen=True)
class ServedTool:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str
    output: Any
    error: Any

    @property
    def finished(self) -> bool:
        return self.status in RUN_TERMINAL

    @property
    def failed(self) -> bool:
        return self.status in (RunStatus.FAILED, RunStatus.CANCELLED)


def _active(organization: Organization) -> QuerySet[Orchestration]:
    return Orchestration.objects.alive().filter(
        organization=organization, status=OrchestrationStatus.ACTIVE
    )


def tools_for(tenant: Tenant) -> list[ServedTool]:
    rows = _active(tenant.organization).order_by("slug")
    return [
        ServedTool(
            name=row.slug,
            description=row.description or row.name,
            input_schema=inputs_json_schema(row.definition.get("inputs", [])),
        )
        for row in rows.only("slug", "name", "description", "definition")
    ]


def fire(
    tenant: Tenant,
    user: Actor,
    name: str,
    arguments: dict[str, Any] | None,
    *,
    idempotency_key: str = "",
) -> Run:
    """Start a run of the org's active orchestration `name` (its slug). Another org's slug is
    just as unknown as one that exists nowhere; the role check comes after the lookup. An
    `Idempotency-Key` on the HTTP request is scoped to the token, as on the runs API."""
    # A name no column can store names nothing (PostgreSQL refused it in the lookup: a 500).
    known = unstorable_path(name) is None
    orchestration = _active(tenant.organization).filter(slug=name).first() if known else None
    if orchestration is None:
        raise NotFound(f"No active orchestration '{name}' in this organization.")
    if not tenant.allows(Role.EDITOR):
        raise Forbidden(
            f"Running an orchestration needs the editor role; your role here is {tenant.role}."
        )
    token = tenant.token
    run, _ = lifecycle.fire(
        orchestration,
        arguments or {},
        trigger_kind=TriggerKind.API,
        requested_by=user,
        idempotency_key=idempotency_key,
        caller=f"token:{token.pk}" if token is not None else "",
    )
    return run


def outcome(run_id: Pk) -> RunOutcome:
    row = Run.objects.values("status", "output", "error").get(pk=run_id)
    return RunOutcome(str(run_id), row["status"], row["output"], row["error"])
