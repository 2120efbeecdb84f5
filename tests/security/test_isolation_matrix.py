"""Tenant isolation, route by route: every API route under /api/v1/ is read from the URL resolver,
and every route that takes an object id is called by each role of organization B with the ids
of organization A's objects. The answer is always 404 `not_found` (never 403, 200 or 500), lists
never show A's ids, pages answer 404 and the run websocket refuses.

Left out on purpose: templates (global), the gallery (public by design), inbound webhooks (no
bearer token: the signature matrix covers them).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from approvals.models import Approval
from config.asgi import application
from core.choices import Role
from orchestrator.models import Agent, ApiToken, Credential, Group, McpServer, Membership
from orchestrator.services.orchestrations import create_orchestration
from runs.models import OutputVersion, Run, TriggerKind
from runs.services import lifecycle
from tests.runs.harness import drain

pytestmark = pytest.mark.django_db

ROLES = (Role.VIEWER, Role.EDITOR, Role.ADMIN)
METHODS = ("get", "post", "put", "patch", "delete")
# First path segment -> which of A's objects `pk` names on that route.
PK_KIND = {
    "orchestrations": "orchestration",
    "runs": "run",
    "approvals": "approval",
    "agents": "agent",
    "groups": "group",
    "credentials": "credential",
    "triggers": "trigger",
    "tokens": "token",
    "mcp-servers": "mcp_server",
}
NOT_TENANT_SCOPED = ("templates", "gallery", "webhooks")
ADMIN_LISTS = ("/api/v1/tokens",)
# A body with something for every write route, so a 404 cannot hide behind a 400.
BODY = {
    "name": "stolen",
    "description": "x",
    "input": {},
    "message": "hi",
    "async": True,
    "approved": True,
    "decision": "approve",
    "response": {"decision": "approve"},
    "comment": "ok",
    "reason": "ok",
    "prompt": "rewrite",
    "from_step": "first",
    "is_active": False,
    "kind": "api_key",
    "value": "x",
    "model": "builtin/echo",
}


# --- the routes, from the resolver ----------------------------------------------------------


@dataclass
class Route:
    pattern: str  # the regex, relative to /api/v1/
    kwargs: tuple[str, ...]
    methods: tuple[str, ...] | None  # None: a function view, methods unknown until asked

    @property
    def segment(self) -> str:
        return self.pattern.lstrip("^").split("/")[0]


def api_routes() -> list[Route]:
    def walk(patterns, prefix=""):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                yield prefix + str(entry.pattern), entry

    routes = []
    for full, entry in walk(get_resolver().url_patterns):
        if not full.startswith("api/v1/"):
            continue
        pattern = full.removeprefix("api/v1/")
        actions = getattr(entry.callback, "actions", None)
        view_class = getattr(entry.callback, "view_class", None) or getattr(
            entry.callback, "cls", None
        )
        if actions:
            allowed = getattr(view_class, "http_method_names", METHODS)
            methods = tuple(sorted(m for m in actions if m in allowed))
        elif view_class is not None:
            methods = tuple(m for m in METHODS if hasattr(view_class, m))
        else:
            methods = None
        routes.append(Route(pattern, tuple(entry.pattern.regex.groupindex), methods))
    return routes


def fill(pattern: str, values: dict[str, str]) -> str:
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values[m.group(1)], pattern)
    return "/api/v1/" + path.lstrip("^").replace("/?$", "").replace("$", "")


# --- two organizations and everything A owns --------------------------------------------------


@dataclass
class Org:
    ids: dict[str, str] = field(default_factory=dict)


def flow(org, name: str, *, gate: bool):
    nodes = [{"id": "first", "type": "transform", "config": {"output": "{{ input }}"}}]
    edges = []
    if gate:
        nodes.append({"id": "gate", "type": "approval", "config": {"prompt": "ok?"}})
        edges.append({"source": "first", "target": "gate"})
    return create_orchestration(
        org,
        {
            "name": name,
            "status": "active",
            "definition": {"nodes": nodes, "edges": edges},
            "triggers": [{"kind": "webhook"}],
        },
    )


def populate(org, prefix: str) -> Org:
    gated = flow(org, f"{prefix} gated", gate=True)
    plain = flow(org, f"{prefix} plain", gate=False)
    paused, _ = lifecycle.fire(gated, {}, trigger_kind=TriggerKind.API)
    done, _ = lifecycle.fire(plain, {"n": 1}, trigger_kind=TriggerKind.API)
    done_too, _ = lifecycle.fire(plain, {"n": 2}, trigger_kind=TriggerKind.API)
    drain()
    approval = Approval.objects.get(run=paused, status="pending")
    OutputVersion.objects.create(run=done, version=1, output="v1")
    agent = Agent.objects.create(organization=org, name=f"{prefix}-agent", model="builtin/echo")
    group = Group.objects.create(organization=org, name=f"{prefix}-group")
    credential = Credential.objects.create(
        organization=org, name=f"{prefix}-cred", kind="api_key", encrypted_value="x"
    )
    token, _ = ApiToken.issue(org, Role.ADMIN, service_account=f"{prefix}-robot")
    mcp_server = McpServer.objects.create(
        organization=org, name=f"{prefix}-mcp", url="https://mcp.example.com/mcp"
    )
    return Org(
        {
            "orchestration": str(gated.pk),
            "orchestration_slug": gated.slug,
            "plain_orchestration": str(plain.pk),
            "run": str(done.pk),
            "other_run": str(done_too.pk),
            "paused_run": str(paused.pk),
            "approval": str(approval.pk),
            "trigger": str(gated.triggers.get().pk),
            "agent": str(agent.pk),
            "group": str(group.pk),
            "credential": str(credential.pk),
            "token": str(token.pk),
            "mcp_server": str(mcp_server.pk),
        }
    )


@pytest.fixture
def world(org, other_org):
    return populate(org, "a"), populate(other_org, "b")


def client_for(organization, role: str) -> APIClient:
    _, raw = ApiToken.issue(organization, role, service_account=f"sec-{role}")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


# --- which URLs to try -------------------------------------------------------------------------


def urls_for(route: Route, a: Org, b: Org) -> list[str]:
    """The route filled with A's ids; routes with two ids also mix in B's own ids, so that a
    check made only on one of the two ids would show."""
    if not route.kwargs or route.segment in NOT_TENANT_SCOPED:
        return []
    # Answering a gate needs a paused run; everything else takes a finished one.
    paused = "resume" in route.pattern or "step_id" in route.kwargs
    run_a = a.ids["paused_run" if paused else "run"]
    fixed = {"step_id": "gate", "number": "1", "a": "1", "b": "1"}
    if route.segment == "runs":
        combos = [{"pk": run_a, "other": a.ids["other_run"]}]
        if "other" in route.kwargs:
            combos += [{"pk": run_a, "other": b.ids["run"]}, {"pk": b.ids["run"], "other": run_a}]
    elif route.segment == "orchestrations" and "orchestration_pk" in route.kwargs:
        orchestration_a, orchestration_b = (
            a.ids["plain_orchestration"],
            b.ids["plain_orchestration"],
        )
        combos = [{"orchestration_pk": orchestration_a, "pk": a.ids["run"]}]
        if "pk" in route.kwargs:
            combos += [
                {"orchestration_pk": orchestration_b, "pk": a.ids["run"]},
                {"orchestration_pk": orchestration_a, "pk": b.ids["run"]},
            ]
    elif route.segment == "orchestrations":
        combos = [{"pk": a.ids["orchestration"]}, {"pk": a.ids["orchestration_slug"]}]
    else:
        combos = [{"pk": a.ids[PK_KIND[route.segment]]}]
    return list(dict.fromkeys(fill(route.pattern, {**fixed, **combo}) for combo in combos))


def masked(content: bytes, org: Org) -> str:
    """The answer with the ids it echoes replaced by their names, to compare two answers."""
    text = content.decode()
    for key, value in sorted(org.ids.items(), key=lambda item: -len(item[1])):
        text = text.replace(value, f"<{key}>")
    return text


def call(client: APIClient, method: str, url: str, etag: str = "*"):
    return getattr(client, method)(url, BODY, format="json", HTTP_IF_MATCH=etag)


def test_every_route_with_an_id_answers_404_to_every_role_of_another_org(world, other_org):
    """Each call is made twice: with A's ids and with ids that exist nowhere. The two answers
    must be the same, so no answer tells whether A's object exists; and the answer is 404
    wherever the caller's role may use the method at all.

    A viewer's write to another organization's object answers 404 too: the role check looks the
    object up first, and a method the route does not take is 405 for every role.
    """
    a, b = world
    nowhere = Org({key: str(uuid.uuid4()) for key in a.ids} | {"orchestration_slug": "nope"})
    routes = api_routes()
    assert len(routes) >= 40, "the resolver lost the API"
    clients = {role: client_for(other_org, role) for role in ROLES}
    counts = {"404": 0, "405": 0}
    urls_seen, wrong = set(), []
    for route in routes:
        pairs = zip(urls_for(route, a, b), urls_for(route, nowhere, b), strict=True)
        for url, twin_url in pairs:
            urls_seen.add(url)
            for role, client in clients.items():
                for method in METHODS:
                    answer, twin = call(client, method, url), call(client, method, twin_url)
                    status = answer.status_code
                    same = (status, masked(answer.content, a)) == (
                        twin.status_code,
                        masked(twin.content, nowhere),
                    )
                    if status == 405 and same and method not in (route.methods or METHODS):
                        counts["405"] += 1
                    elif status == 405 and same and route.methods is None:
                        counts["405"] += 1  # a function view, and a method it does not take
                    elif status == 404 and same and answer.json()["error"] == "not_found":
                        counts["404"] += 1
                    else:
                        wrong.append((role, method, url, status, answer.content[:100]))
    assert wrong == []
    assert counts["404"] >= 150 and len(urls_seen) >= 45
    total = sum(counts.values())
    print(
        f"\nisolation: {len(routes)} API routes, {len(urls_seen)} URLs with A's ids x "
        f"{len(METHODS)} methods x {len(ROLES)} roles = {total} calls: {counts}"
    )


# --- lists --------------------------------------------------------------------------------------


def list_urls(a: Org, b: Org) -> list[str]:
    """Every list route, plain and filtered by A's ids."""
    lists = [
        "/api/v1/orchestrations",
        "/api/v1/runs",
        "/api/v1/approvals",
        "/api/v1/approvals?pending=true",
        "/api/v1/agents",
        "/api/v1/groups",
        "/api/v1/models",
        "/api/v1/credentials",
        "/api/v1/tokens",
        "/api/v1/mcp-servers",
        f"/api/v1/orchestrations/{b.ids['plain_orchestration']}/runs",
        f"/api/v1/orchestrations/{b.ids['plain_orchestration']}/triggers",
        f"/api/v1/runs/{b.ids['run']}/events",
        f"/api/v1/runs/{b.ids['run']}/steps",
        f"/api/v1/runs/{b.ids['run']}/versions",
    ]
    filtered = [
        f"/api/v1/runs?orchestration={a.ids['plain_orchestration']}",
        f"/api/v1/approvals?run={a.ids['paused_run']}",
        f"/api/v1/approvals?orchestration={a.ids['orchestration']}",
        f"/api/v1/orchestrations?group={a.ids['group']}",
        "/api/v1/orchestrations?q=a%20gated",
    ]
    return lists + filtered


def test_lists_never_contain_the_ids_of_another_org(world, other_org):
    a, b = world
    secrets = set(a.ids.values())
    for role in ROLES:
        client = client_for(other_org, role)
        for url in list_urls(a, b):
            response = client.get(url)
            expected = 403 if url in ADMIN_LISTS and role != Role.ADMIN else 200
            assert response.status_code == expected, (role, url, response.status_code)
            leaked = [value for value in secrets if value in response.content.decode()]
            assert leaked == [], (role, url)
    # and the same lists do show B's own objects, so an empty answer is not the whole story
    mine = client_for(other_org, Role.VIEWER).get("/api/v1/runs").content.decode()
    assert b.ids["run"] in mine
    print(f"\nisolation: {len(list_urls(a, b))} list URLs x {len(ROLES)} roles, 0 foreign ids")


# --- pages and the websocket ------------------------------------------------------------------


def session_client(organization, username: str) -> Client:
    user = get_user_model().objects.create_user(username, password="pw-long-enough-1")
    Membership.objects.create(user=user, organization=organization, role=Role.ADMIN)
    client = Client()
    client.force_login(user)
    return client


def test_pages_of_another_org_answer_404(world, other_org):
    a, _ = world
    client = session_client(other_org, "b-admin")
    pages = [
        f"/orchestrations/{a.ids['orchestration']}/",
        f"/runs/{a.ids['run']}/",
        f"/runs/{a.ids['paused_run']}/",
        f"/runs/{a.ids['run']}/outputs/",
    ]
    for page in pages:
        assert client.get(page).status_code == 404, page
    for page in ("/", "/approvals/"):
        response = client.get(page)
        assert response.status_code == 200
        leaked = [value for value in a.ids.values() if value in response.content.decode()]
        assert leaked == [], page


def test_the_run_socket_refuses_a_token_of_another_org(world, other_org):
    a, _ = world

    async def connect(path: str):
        communicator = WebsocketCommunicator(
            application, path, headers=[(b"origin", b"http://testserver")]
        )
        connected, code = await communicator.connect(timeout=5)
        received = [] if connected else None
        if connected:
            received.append(await communicator.receive_json_from(timeout=5))
            await communicator.disconnect()
        return connected, code, received

    refused = 0
    for role in ROLES:
        _, raw = ApiToken.issue(other_org, role, service_account=f"ws-{role}")
        for run in (a.ids["run"], a.ids["paused_run"]):
            connected, code, received = async_to_sync(connect)(f"/ws/runs/{run}/?token={raw}")
            assert (connected, code, received) == (False, 4403, None), (role, run)
            refused += 1
    # the control: B's own token on B's own run connects
    _, raw = ApiToken.issue(other_org, Role.VIEWER, service_account="ws-control")
    b_run = world[1].ids["run"]
    connected, _, received = async_to_sync(connect)(f"/ws/runs/{b_run}/?token={raw}")
    assert connected and received
    print(f"\nisolation: websocket refused {refused} times to B's tokens on A's runs")


# --- A's objects named inside B's definitions ------------------------------------------------


def test_a_definition_cannot_reach_another_orgs_objects_by_id(world, org, other_org, settings):
    """B names A's orchestration (subflow), agent and credential inside its own definition: it is
    refused when saved, or the step fails; A's objects are never used."""
    from tests.runs.servers import local_server

    a, _ = world
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    editor = client_for(other_org, Role.EDITOR)
    a_runs_before = Run.objects.filter(organization=org).count()
    with local_server() as upstream:
        nodes = {
            "subflow": {
                "id": "sub",
                "type": "subflow",
                "config": {"orchestration": a.ids["plain_orchestration"]},
            },
            "agent": {
                "id": "ask",
                "type": "agent",
                "config": {"agent": a.ids["agent"], "prompt": "hi"},
            },
            "credential": {
                "id": "get",
                "type": "http",
                "config": {"url": f"{upstream.url}/x", "credential": a.ids["credential"]},
            },
        }
        outcomes = {}
        for kind, node in nodes.items():
            created = editor.post(
                "/api/v1/orchestrations",
                {"name": f"uses {kind}", "status": "active", "definition": {"nodes": [node]}},
                format="json",
            )
            if created.status_code == 400:
                outcomes[kind] = "refused when saved"
                continue
            assert created.status_code == 201, created.content
            fired = editor.post(
                f"/api/v1/orchestrations/{created.json()['id']}/runs", {}, format="json"
            )
            assert fired.status_code == 202, fired.content
            drain()
            run = editor.get(f"/api/v1/runs/{fired.json()['id']}").json()
            assert run["status"] == "failed", (kind, run["status"])
            outcomes[kind] = "step failed"
        sent = [{k.lower() for k in headers} for headers in upstream.headers_seen]
    assert all("x-api-key" not in headers for headers in sent)
    assert Run.objects.filter(organization=org).count() == a_runs_before
    print(f"\nisolation: A's ids in B's definitions: {outcomes}")
