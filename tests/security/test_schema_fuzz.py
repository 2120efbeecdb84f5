"""schemathesis against /api/schema/: every operation of the published schema, called in-process
through the WSGI application with generated requests, valid and invalid, and every answer checked
against the same schema.

Checks: no 5xx; the status code is documented for the operation; the body matches the documented
schema of that code; the Content-Type and the documented headers match.

- Fuzzing: `EXAMPLES` generated cases per operation (80; 1,000 with `SOAK=1`), half valid and half
  not, half of them on the ids of real objects (an orchestration with a webhook and a schedule
  trigger, a finished run, a run paused at an approval, a run paused at a form, an agent, ...) and
  half on generated ids. Each case runs in a savepoint rolled back after it, so every case meets
  the same objects: a DELETE does not starve the cases after it.
- Stateful: schemathesis' state machine chains operations along the links it infers from the
  schema (a POST's `id` into the GET, PATCH and DELETE of that object, a run's id into its
  sub-resources), `SCENARIOS` scenarios of up to `STEPS` calls, each rolled back after it.

The rate limits are raised for the test: a fuzzer is one client sending thousands of requests a
minute, which the real limit (6,000 a minute per token) would soon answer with 429 (documented,
so not a failure), and the cases after that would test only the throttle. Sync waits (`"async":
false` and `resume`) wait 0 s: no worker runs here, so a run never moves past queued and the wait
would last the full SYNC_RUN_TIMEOUT_S; with 0 s they answer at once, as they do when the
timeout passes.

Not in the schema, so not fuzzed: the Server-Sent Events routes (`/runs/stream`,
`/events/stream`, `/resume/stream`), which stream until the run ends.
`SCHEMA_FUZZ_SEED` changes the generated cases (the default is fixed, for a stable CI run).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.throttling import SimpleRateThrottle
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from approvals import services as approvals
from approvals.models import Approval
from config.wsgi import application
from core.choices import Role
from core.tenancy import ServiceAccount
from orchestrator.models import Agent, ApiToken, Credential, Group, McpServer, Organization
from orchestrator.services.orchestrations import create_orchestration, soft_delete
from orchestrator.services.starters import load_starters
from runs.engine import mcp
from runs.models import OutputVersion, Run, TriggerKind
from runs.services import lifecycle, outputs
from tests.runs.harness import drain

pytestmark = [pytest.mark.django_db, pytest.mark.schema_fuzz]

SOAK = os.environ.get("SOAK") == "1"
EXAMPLES = 1_000 if SOAK else 80
SCENARIOS = 500 if SOAK else 40
STEPS = 10
SEED = int(os.environ.get("SCHEMA_FUZZ_SEED", "20251126"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
HEALTH_CHECKS = list(HealthCheck)  # slow generation of big bodies is expected, not an error


# --- an organization with something behind every id -----------------------------------------


@dataclass
class World:
    """The caller's bearer token and the ids of the objects generated cases may aim at."""

    token: str
    ids: dict[str, list[str]] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _flow(org: Organization, name: str, nodes: list[dict], **extra: Any):
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(nodes)]
    return create_orchestration(
        org,
        {
            "name": name,
            "status": "active",
            "definition": {
                "inputs": [{"name": "topic", "type": "string", "required": False}],
                "nodes": nodes,
                "edges": edges,
            },
            **extra,
        },
    )


def populate(org: Organization) -> World:
    """An orchestration with a webhook and a schedule trigger, public with its definition; a
        finished run (shared, with an output version) and a second one to diff it with; a run paused
        at an approval and one paused at a form; a finished run of a deleted orchestration (its runs
    stay readable); an agent, a group, a credential; the starters."""
    load_starters()
    gated = _flow(
        org,
        "Gated report",
        [
            {"id": "draft", "type": "transform", "config": {"output": "{{ input.topic }}"}},
            {"id": "review", "type": "approval", "config": {"prompt": "Publish?"}},
            {"id": "report", "type": "transform", "config": {"output": "done"}},
        ],
        triggers=[
            {"kind": "webhook"},
            {"kind": "schedule", "cron_expression": "*/5 * * * *", "timezone": "Europe/Paris"},
        ],
        is_public=True,
        public_definition=True,
        tags=["fuzz"],
        metadata={"team": "qa"},
    )
    form = _flow(
        org,
        "Intake",
        [
            {
                "id": "ask",
                "type": "human_input",
                "config": {
                    "prompt": "Details?",
                    "fields": [
                        {"name": "title", "type": "text", "required": True},
                        {"name": "count", "type": "number"},
                        {"name": "tier", "type": "select", "options": ["a", "b"]},
                        {"name": "urgent", "type": "boolean"},
                    ],
                },
            },
        ],
    )
    retired = _flow(
        org, "Retired", [{"id": "only", "type": "transform", "config": {"output": "old"}}]
    )
    runs = [
        lifecycle.fire(flow, {"topic": "bees"}, trigger_kind=TriggerKind.API)[0]
        for flow in (gated, gated, gated, form, retired)
    ]
    drain()
    soft_delete(retired)
    someone = ServiceAccount("fuzz-setup")
    for run in runs[:2]:
        approval = Approval.objects.get(run=run, status="pending")
        approvals.decide(approval.pk, approve=True, user=someone, comment="ok")
    drain()
    finished, other, paused, asking, orphan = (Run.objects.get(pk=run.pk) for run in runs)
    assert [run.status for run in (finished, other, paused, asking, orphan)] == [
        "succeeded",
        "succeeded",
        "paused",
        "paused",
        "succeeded",
    ]
    outputs.share(finished)
    OutputVersion.objects.get_or_create(run=finished, version=1, defaults={"output": "v1"})
    gated.refresh_from_db()
    _, raw = ApiToken.issue(org, Role.ADMIN, service_account="fuzz-admin")
    triggers = {t.kind: t for t in gated.triggers.all()}
    return World(
        token=raw,
        ids={
            "orchestration": [str(gated.pk), gated.slug, str(form.pk)],
            "run": [str(finished.pk), str(paused.pk), str(asking.pk), str(orphan.pk)],
            "other_run": [str(other.pk)],
            "step_id": ["review", "ask"],
            "version": ["1", "2"],
            "output_version": ["1"],
            "approval": [
                str(a.pk) for a in Approval.objects.filter(run__in=runs).order_by("status")
            ],
            "trigger": [str(t.pk) for t in triggers.values()],
            "webhook_token": [triggers["webhook"].webhook_token],
            "agent": [
                str(Agent.objects.create(organization=org, name="writer", model="builtin/echo").pk)
            ],
            "group": [str(Group.objects.create(organization=org, name="research").pk)],
            "credential": [
                str(
                    Credential.objects.create(
                        organization=org, name="search", kind="api_key", encrypted_value="x"
                    ).pk
                )
            ],
            "token": [str(ApiToken.issue(org, Role.VIEWER, service_account="fuzz-robot")[0].pk)],
            "mcp-server": [
                str(
                    McpServer.objects.create(
                        organization=org, name="docs", url="https://mcp.example.com/mcp"
                    ).pk
                )
            ],
            "template": ["research-report", "webhook-summary"],
            "gallery": [str(gated.pk)],
        },
    )


def id_kind(path: str, name: str) -> str:
    """Which of the world's ids a path parameter names."""
    segment = path.removeprefix("/api/v1/").split("/")[0]
    if name in ("orchestration_pk", "orchestration_id"):
        return "orchestration"
    if name == "id" and segment == "orchestrations" and "/runs/{id}" in path:
        return "run"
    if name in ("a", "b") or (name == "number" and segment == "orchestrations"):
        return "version"
    if name == "number":
        return "output_version"
    if name == "other":
        return "other_run"
    if name == "token":
        return "webhook_token"
    if name == "step_id":
        return "step_id"
    singular = {"runs": "run", "templates": "template", "gallery": "gallery"}
    return singular.get(segment, segment.rstrip("s"))


def known_parameters(world: World, path: str) -> list[dict[str, str]]:
    """Every combination of real ids for the path's parameters."""
    names = re.findall(r"\{(\w+)\}", path)
    if not names:
        return []
    choices = [world.ids[id_kind(path, name)] for name in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]


# --- the schema, the calls, the figures ---------------------------------------------------------


@dataclass
class Figures:
    operations: int = 0
    examples: int = 0
    per_operation: Counter = field(default_factory=Counter)
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def count(self, status: int) -> None:
        self.requests += 1
        self.statuses[f"{status // 100}xx"] += 1


def _offline_mcp(server) -> list:
    raise mcp.McpFailure("no MCP server is called while fuzzing")


@pytest.fixture
def world(org, settings, monkeypatch, caplog) -> Iterator[World]:
    """The populated organization, with the app answering in this test's transaction."""
    settings.SYNC_RUN_TIMEOUT_S = 0.0
    # Registering an MCP server lists its tools: a generated public address must not be called.
    monkeypatch.setattr(mcp, "list_tools_sync", _offline_mcp)
    # Thousands of 4xx are the point here, not news; a 5xx is still logged (and fails the test).
    caplog.set_level(logging.ERROR, logger="django.request")
    monkeypatch.setattr(
        SimpleRateThrottle,
        "THROTTLE_RATES",
        {"anon": "1000000/min", "user": "1000000/min", "webhook": "1000000/min"},
    )
    # As Django's test client does: the request signals would close the test's connection, and
    # the transaction with it (its autocommit differs from the settings').
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    try:
        yield populate(org)
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)


@pytest.fixture
def schema(world) -> schemathesis.BaseSchema:
    """Read from the app itself, as a client would, once the app shares the transaction."""
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


def operations(schema) -> list:
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) >= 60, "the schema lost operations"
    return found


def case_strategy(operation, world: World) -> st.SearchStrategy:
    """Valid and invalid cases, on generated ids and on the world's."""
    strategies = [
        operation.as_strategy(generation_mode=mode)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]
    real = known_parameters(world, operation.path)
    if real:
        strategies.append(
            st.one_of(
                operation.as_strategy(generation_mode=mode, path_parameters=parameters)
                for parameters in real
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            )
        )
        strategies = [st.one_of(strategies[:2]), strategies[2]]
    return st.one_of(strategies)


def fuzz(operation, world: World, figures: Figures) -> None:
    """Up to EXAMPLES cases of one operation; the first failing one (shrunk) is recorded."""

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=HEALTH_CHECKS,
        phases=[Phase.generate, Phase.shrink],
    )
    @seed(SEED)
    @given(case=case_strategy(operation, world))
    def run(case) -> None:
        figures.examples += 1
        figures.per_operation[operation.label] += 1
        with transaction.atomic():
            response = case.call(headers=world.headers)
            transaction.set_rollback(True)
        figures.count(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=world.headers)

    try:
        run()
    except (Exception, FailureGroup) as exc:  # failed checks, or a case that could not be made
        figures.failures.append(f"{operation.label}: {type(exc).__name__}: {exc}")


def test_every_operation_answers_as_the_schema_says(schema, world):
    figures = Figures()
    started = time.monotonic()
    for operation in operations(schema):
        figures.operations += 1
        fuzz(operation, world, figures)
    elapsed = time.monotonic() - started
    fewest = min(figures.per_operation.values())
    print(
        f"\nschema fuzz: {figures.operations} operations x {fewest} to {EXAMPLES} examples = "
        f"{figures.examples} examples, {figures.requests} requests "
        f"({dict(sorted(figures.statuses.items()))}), {len(figures.failures)} failures, "
        f"{elapsed:.0f} s"
    )
    assert figures.failures == [], "\n\n".join(figures.failures)
    assert fewest == EXAMPLES, f"an operation ran only {fewest} examples: {figures.per_operation}"


def test_linked_operations_answer_as_the_schema_says(schema, world):
    figures = Figures()
    base = schema.as_state_machine()
    links = schema.statistic.transitions.total
    assert links >= 20, f"schemathesis inferred only {links} links"

    class Scenario(base):
        """One rolled-back chain of calls with the world's token."""

        def setup(self) -> None:
            self.savepoint = transaction.atomic()
            self.savepoint.__enter__()
            figures.examples += 1

        def teardown(self) -> None:
            transaction.set_rollback(True)
            self.savepoint.__exit__(None, None, None)

        def get_call_kwargs(self, case) -> dict[str, Any]:
            return {"headers": world.headers}

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            figures.count(response.status_code)
            case.validate_response(
                response,
                checks=CHECKS,
                headers=world.headers,
                transport_kwargs=kwargs or None,
                recorder=getattr(self, "recorder", None),
            )

    started = time.monotonic()
    seed(SEED)(Scenario).run(
        settings=hypothesis_settings(
            max_examples=SCENARIOS,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=HEALTH_CHECKS,
            phases=[Phase.generate, Phase.shrink],
        )
    )
    assert figures.requests >= 2 * SCENARIOS, "the scenarios made almost no calls"
    print(
        f"\nschema stateful: {links} links, {figures.examples} scenarios, "
        f"{figures.requests} requests ({dict(sorted(figures.statuses.items()))}), 0 failures, "
        f"{time.monotonic() - started:.0f} s"
    )
