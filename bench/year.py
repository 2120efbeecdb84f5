"""A year of a deployment's data, written by PostgreSQL itself (`INSERT ... SELECT` over
`generate_series`): 100,000 runs, a million steps and five million events take minutes, where
the ORM would take hours.

Every run follows the same ten-step definition (an agent, an HTTP call, an approval gate and
transforms), so a run's detail and its events page have the same shape at every scale; only
the number of runs changes. Runs are spread evenly over the organizations, their orchestrations
and the year before `now`, newest first; one in fifty failed, one in two hundred was cancelled,
and the newest few are paused at their approval gate, which is pending (the inbox). Every other
run's gate was decided.

Needs a configured Django on PostgreSQL; used by `bench.data` and the query plan tests.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from approvals.models import Approval
from core.choices import Role
from orchestrator.models import Membership, Orchestration, OrchestrationVersion, Organization
from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run, RunEvent, StepRun

# (node id, type, config): the steps of every run, in order.
NODES = (
    ("intake", "transform", {"output": "{{ input.message }}"}),
    ("fetch", "http", {"url": "https://example.com/records"}),
    ("extract", "transform", {"output": "records"}),
    ("draft", "agent", {"agent": {"model": "builtin/echo"}, "prompt": "Summarise {{ input }}"}),
    ("check", "transform", {"output": "checked"}),
    ("review", "approval", {"prompt": "Publish the summary?"}),
    ("format", "transform", {"output": "formatted"}),
    ("publish", "http", {"url": "https://example.com/publish", "method": "POST"}),
    ("notify", "transform", {"output": "notified"}),
    ("archive", "transform", {"output": "archived"}),
)
GATE = [node for node, _, _ in NODES].index("review") + 1  # 1-based, as generate_series counts
EVENT_TYPES = ("step_start", "agent_turn", "tool_execution", "tool_result", "step_complete")


@dataclass(frozen=True)
class Scale:
    runs: int
    events_per_run: int = 50
    organizations: int = 3
    orchestrations_per_organization: int = 10
    paused: int = 60  # the newest runs, waiting at their gate: the pending approvals

    @property
    def steps(self) -> int:
        return self.runs * len(NODES)

    @property
    def events(self) -> int:
        return self.runs * self.events_per_run


YEAR = Scale(runs=100_000)
# Enough runs to fill every page the bench opens (its lists ask for 10), so that a page shows
# the same on both sides and only what it reads to find them differs: 1.5 % of a year.
NEAR_EMPTY = Scale(runs=1_500)


@dataclass(frozen=True)
class Loaded:
    organizations: list[Organization]
    orchestrations: list[Orchestration]
    user: object  # a member (viewer) of the first organization, for the server-rendered pages


def create_organizations(scale: Scale, prefix: str = "year") -> Loaded:
    """The organizations, their orchestrations and a member: a few rows, through the services."""
    organizations, flows = [], []
    for index in range(scale.organizations):
        org = Organization.objects.create(slug=f"{prefix}-{index}", name=f"Year {index}")
        organizations.append(org)
        for number in range(scale.orchestrations_per_organization):
            flows.append(
                create_orchestration(
                    org,
                    {
                        "name": f"Flow {index}-{number:02d}",
                        "status": "active",
                        "tags": ["year", f"team-{number % 3}"],
                        "definition": {
                            "nodes": [
                                {"id": node, "type": kind, "config": config}
                                for node, kind, config in NODES
                            ],
                            "edges": [
                                {"source": a, "target": b}
                                for (a, _, _), (b, _, _) in itertools.pairwise(NODES)
                            ],
                        },
                    },
                )
            )
    user = get_user_model().objects.create_user(f"{prefix}-viewer", password=None)
    Membership.objects.create(
        user=user, organization=organizations[0], role=Role.VIEWER, is_default=True
    )
    return Loaded(organizations, flows, user)


def load(scale: Scale, loaded: Loaded, now: datetime | None = None) -> None:
    """Runs, steps, gates and events for `loaded`'s orchestrations, then fresh statistics."""
    now = now or timezone.now()
    versions = dict(
        OrchestrationVersion.objects.filter(orchestration__in=loaded.orchestrations).values_list(
            "orchestration_id", "id"
        )
    )
    params = {
        "runs": scale.runs,
        "paused": scale.paused,
        "flows": len(loaded.orchestrations),
        "orgs": [str(flow.organization_id) for flow in loaded.orchestrations],
        "flow_ids": [str(flow.pk) for flow in loaded.orchestrations],
        "versions": [str(versions[flow.pk]) for flow in loaded.orchestrations],
        "now": now,
        "spacing": timedelta(days=365) / scale.runs,
        "nodes": [node for node, _, _ in NODES],
        "types": [kind for _, kind, _ in NODES],
        "steps": len(NODES),
        "gate": GATE,
        "events": scale.events_per_run,
        "event_types": list(EVENT_TYPES),
        "mine": [str(org.pk) for org in loaded.organizations],
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'")
        for statement in (RUNS, STEPS, APPROVALS, EVENTS):
            cursor.execute(statement, params)
    analyze()


def remove(loaded: Loaded) -> None:
    """Everything `create_organizations` and `load` wrote: their runs with TRUNCATE-like speed
    (one statement per table, children first), then the organizations and the member."""
    mine = [str(org.pk) for org in loaded.organizations]
    with transaction.atomic(), connection.cursor() as cursor:
        for table in ("runs_runevent", "approvals_approval", "runs_steprun"):
            cursor.execute(
                f"DELETE FROM {table} WHERE run_id IN "
                "(SELECT id FROM runs_run WHERE organization_id = ANY(%s::uuid[]))",
                [mine],
            )
        cursor.execute("DELETE FROM runs_run WHERE organization_id = ANY(%s::uuid[])", [mine])
        Organization.objects.filter(pk__in=mine).delete()
        loaded.user.delete()


def analyze() -> None:
    """Fresh planner statistics, as autovacuum would keep them after a while."""
    with connection.cursor() as cursor:
        for model in (Run, StepRun, RunEvent, Approval, Orchestration):
            cursor.execute(f'ANALYZE "{model._meta.db_table}"')


RUNS = """
INSERT INTO runs_run (
    id, organization_id, orchestration_id, orchestration_version_id, version, status,
    trigger_kind, input, output, output_type, shared_state, replay_from_step, entry_step,
    parent_step_id, depth, cost_usd, tokens_input, tokens_output, steps_completed, steps_total,
    metadata, requested_by_name, idempotency_key, idempotency_caller, idempotency_fingerprint,
    cancel_requested, budget_hold, unpriced, refine_status, refine_error, last_seq, created_at,
    started_at, finished_at, tool_call_id, tool_call_settled
)
SELECT
    gen_random_uuid(), (%(orgs)s::uuid[])[k], (%(flow_ids)s::uuid[])[k],
    (%(versions)s::uuid[])[k], 1, status,
    (ARRAY['api', 'webhook', 'schedule', 'manual'])[1 + i %% 4],
    jsonb_build_object('message', 'request ' || i),
    CASE WHEN status = 'succeeded' THEN to_jsonb('A summary of request ' || i) END,
    'markdown', '{}'::jsonb, '', '', '', 0, 0.0042, 1200, 300,
    CASE WHEN status = 'paused' THEN %(gate)s - 1 ELSE %(steps)s END, %(steps)s,
    '{}'::jsonb, '', '', '', '', false, false, false, 'idle', '', %(events)s,
    created, created + interval '5 ms',
    CASE WHEN status <> 'paused' THEN created + interval '4 s' END, '', false
FROM (
    SELECT
        i, 1 + i %% %(flows)s AS k, %(now)s - i * %(spacing)s AS created,
        CASE
            WHEN i <= %(paused)s THEN 'paused'
            WHEN i %% 50 = 0 THEN 'failed'
            WHEN i %% 200 = 1 THEN 'cancelled'
            ELSE 'succeeded'
        END AS status
    FROM generate_series(1, %(runs)s) AS i
) AS generated
"""

STEPS = """
INSERT INTO runs_steprun (
    id, run_id, node_id, node_type, attempt, status, input, output, model, tokens_input,
    tokens_output, cost_usd, turns, tool_calls, created_at, started_at, finished_at
)
SELECT
    gen_random_uuid(), r.id, (%(nodes)s::text[])[s], (%(types)s::text[])[s], 1,
    CASE
        WHEN r.status = 'paused' AND s = %(gate)s THEN 'waiting'
        WHEN r.status = 'paused' AND s > %(gate)s THEN 'pending'
        WHEN r.status = 'failed' AND s = %(steps)s THEN 'failed'
        WHEN r.status = 'cancelled' AND s = %(steps)s THEN 'cancelled'
        ELSE 'succeeded'
    END,
    jsonb_build_object('step', s),
    CASE WHEN r.status <> 'paused' OR s < %(gate)s THEN to_jsonb('output of step ' || s) END,
    CASE WHEN (%(types)s::text[])[s] = 'agent' THEN 'builtin/echo' ELSE '' END,
    120, 30, 0.0004, 1, 0,
    r.created_at + s * interval '300 ms', r.created_at + s * interval '300 ms',
    CASE WHEN r.status <> 'paused' OR s < %(gate)s THEN r.created_at + s * interval '400 ms' END
FROM runs_run AS r CROSS JOIN generate_series(1, %(steps)s) AS s
WHERE r.organization_id = ANY(%(mine)s::uuid[])
ORDER BY r.id, s
"""

APPROVALS = """
INSERT INTO approvals_approval (
    id, organization_id, run_id, step_run_id, step_id, kind, prompt, fields, agent_context,
    status, approvers, escalate_to, expires_at, on_timeout, on_deny, comment, decided_by_name,
    decided_at, created_at
)
SELECT
    gen_random_uuid(), r.organization_id, r.id, st.id, st.node_id, 'approval',
    'Publish the summary?', '[]'::jsonb, '',
    CASE WHEN r.status = 'paused' THEN 'pending' ELSE 'approved' END,
    '[]'::jsonb, '[]'::jsonb, st.created_at + interval '7 days', 'deny', 'fail', '',
    CASE WHEN r.status = 'paused' THEN '' ELSE 'reviewer' END,
    CASE WHEN r.status <> 'paused' THEN st.created_at + interval '1 s' END,
    st.created_at
FROM runs_steprun AS st JOIN runs_run AS r ON r.id = st.run_id
WHERE r.organization_id = ANY(%(mine)s::uuid[]) AND st.node_id = 'review'
"""

EVENTS = """
INSERT INTO runs_runevent (run_id, seq, type, step_id, data, ts)
SELECT
    r.id, e,
    CASE
        WHEN e = 1 THEN 'run_queued'
        WHEN e = 2 THEN 'run_started'
        WHEN e = %(events)s THEN 'orchestration_complete'
        ELSE (%(event_types)s::text[])[1 + e %% cardinality(%(event_types)s::text[])]
    END,
    CASE WHEN e > 2 AND e < %(events)s THEN (%(nodes)s::text[])[1 + e %% %(steps)s] ELSE '' END,
    jsonb_build_object('text', 'event ' || e || ' of a run that did its usual work', 'seq', e),
    r.created_at + e * interval '80 ms'
FROM runs_run AS r CROSS JOIN generate_series(1, %(events)s) AS e
WHERE r.organization_id = ANY(%(mine)s::uuid[])
ORDER BY r.id, e
"""
