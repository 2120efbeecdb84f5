"""`/mcp` serves the org's active orchestrations as MCP tools, to the official SDK's client over
streamable HTTP, against a real daphne: list, call and get the output; a paused run answers with
its link; another org's orchestrations are neither listed nor callable; the token is ours."""

from __future__ import annotations

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from core.choices import Role
from orchestrator.models import ApiToken
from orchestrator.services.orchestrations import create_orchestration
from runs.models import Run
from tests.serving import serve

pytestmark = pytest.mark.django_db(transaction=True)

GREET = {"id": "greet", "type": "transform", "config": {"output": "Hello {{ input.name }}"}}
ASK = {
    "id": "ask",
    "type": "human_input",
    "config": {"prompt": "Anything to add?", "fields": [{"name": "notes", "type": "text"}]},
}


@pytest.fixture(scope="module")
def daphne(django_db_setup, tmp_path_factory):
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with serve(log, CELERY_TASK_ALWAYS_EAGER="true", MCP_CALL_WAIT_S="20") as base:
        yield base


def flow(org, name: str, nodes: list[dict], *, status: str = "active", description: str = ""):
    return create_orchestration(
        org,
        {
            "name": name,
            "description": description,
            "status": status,
            "definition": {
                "inputs": [
                    {"name": "name", "type": "string", "required": True, "description": "Who"}
                ],
                "nodes": nodes,
                "edges": [],
            },
        },
    )


def token(org, role: str = Role.EDITOR) -> str:
    _, raw = ApiToken.issue(org, role, service_account=f"mcp-{role}")
    return raw


async def _session(base: str, raw: str, work, *, mode: str = "auto"):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {raw}"}, timeout=30)
    async with http:
        transport = streamable_http_client(f"{base}/mcp", http_client=http)
        async with Client(transport, mode=mode, read_timeout_seconds=30, cache=None) as client:
            return await work(client)


def session(base: str, raw: str, work, *, mode: str = "auto"):
    return anyio.run(lambda: _session(base, raw, work, mode=mode))


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_client_lists_the_active_orchestrations_and_runs_one(daphne, org, mode):
    greeter = flow(org, "Greeter", [GREET], description="Greets a person.")
    flow(org, "Draft flow", [GREET], status="draft")
    raw = token(org)

    async def work(client):
        listed = await client.list_tools()
        called = await client.call_tool(greeter.slug, {"name": "Ada"})
        return listed, called

    listed, called = session(daphne, raw, work, mode=mode)
    tools = {tool.name: tool for tool in listed.tools}
    assert list(tools) == [greeter.slug]
    assert tools[greeter.slug].description == "Greets a person."
    schema = tools[greeter.slug].input_schema
    assert schema["properties"]["name"] == {"type": "string", "description": "Who"}
    assert schema["required"] == ["name"]
    assert not called.is_error
    assert "Hello Ada" in called.content[0].text
    run = Run.objects.get(orchestration=greeter)
    assert called.structured_content["run_id"] == str(run.pk)
    assert called.structured_content["status"] == "succeeded"
    assert run.trigger_kind == "api"


def test_a_run_that_waits_for_people_answers_with_its_link(daphne, org):
    asker = flow(org, "Asker", [ASK])
    raw = token(org)
    called = session(daphne, raw, lambda client: client.call_tool(asker.slug, {"name": "Ada"}))
    run = Run.objects.get(orchestration=asker)
    assert run.status == "paused"
    assert not called.is_error
    assert f"{daphne}/runs/{run.pk}/" in called.content[0].text
    assert called.structured_content["run_url"] == f"{daphne}/runs/{run.pk}/"


def test_input_that_does_not_fit_is_a_tool_error(daphne, org):
    greeter = flow(org, "Greeter", [GREET])
    called = session(daphne, token(org), lambda client: client.call_tool(greeter.slug, {}))
    assert called.is_error
    assert "input.name" in called.content[0].text
    assert not Run.objects.exists()


def test_an_argument_no_column_can_store_is_a_tool_error_not_a_server_error(daphne, org):
    # The SDK's client sends the NUL escaped, as JSON must; the run's input kept it, and
    # PostgreSQL refused the INSERT: the call failed as a server error, on SQLite every read.
    greeter = flow(org, "Greeter", [GREET])
    raw = token(org)
    called = session(daphne, raw, lambda client: client.call_tool(greeter.slug, {"name": "A\x00"}))
    assert called.is_error
    assert "input.name: must not contain the NUL character" in called.content[0].text
    assert not Run.objects.exists()


def test_a_tool_name_holding_a_nul_is_unknown_not_a_server_error(daphne, org):
    flow(org, "Greeter", [GREET])
    raw = token(org)

    # The SDK's client sends the name escaped, as JSON must; the lookup refused it: a 500.
    async def work(client):
        with pytest.raises(MCPError) as refused:
            await client.call_tool("gree\x00ter", {"name": "Ada"})
        return refused.value

    refused = session(daphne, raw, work)
    assert "No active orchestration" in str(refused)
    assert not Run.objects.exists()


def test_another_orgs_orchestrations_are_neither_listed_nor_callable(daphne, org, other_org):
    theirs = flow(other_org, "Secret flow", [GREET])

    async def work(client):
        listed = await client.list_tools()
        with pytest.raises(MCPError) as refused:
            await client.call_tool(theirs.slug, {"name": "Ada"})
        return listed, refused.value

    listed, refused = session(daphne, token(org), work)
    assert listed.tools == []
    assert "No active orchestration" in str(refused)
    assert not Run.objects.exists()


def test_a_viewer_may_list_but_not_run(daphne, org):
    greeter = flow(org, "Greeter", [GREET])

    async def work(client):
        listed = await client.list_tools()
        with pytest.raises(MCPError) as refused:
            await client.call_tool(greeter.slug, {"name": "Ada"})
        return listed, refused.value

    listed, refused = session(daphne, token(org, Role.VIEWER), work)
    assert [tool.name for tool in listed.tools] == [greeter.slug]
    assert "editor role" in str(refused)
    assert not Run.objects.exists()


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic dXNlcjpwYXNz", "Bearer"])
def test_a_missing_or_bad_token_answers_401_in_the_api_error_shape(daphne, header):
    headers = {"Accept": "application/json, text/event-stream"}
    if header is not None:
        headers["Authorization"] = header
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    answer = httpx.post(f"{daphne}/mcp", json=body, headers=headers, trust_env=False)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    assert answer.json()["detail"]


@pytest.mark.parametrize("accept", [None, "text/event-stream"])
def test_a_get_answers_405_at_once_rather_than_holding_a_stream_open(daphne, org, accept):
    """Every answer goes back on its POST: there is no stream of the server's own messages,
    which MCP says a server declines with 405 (an open GET held a connection with nothing, not
    even headers, ever sent)."""
    headers = {"Authorization": f"Bearer {token(org)}"}
    if accept is not None:
        headers["Accept"] = accept
    answer = httpx.get(f"{daphne}/mcp", headers=headers, trust_env=False, timeout=5)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.json()["error"] == "method_not_allowed"
    assert httpx.get(f"{daphne}/mcp", trust_env=False, timeout=5).status_code == 401


def test_an_idempotency_key_on_the_request_starts_one_run(daphne, org):
    greeter = flow(org, "Greeter", [GREET])
    raw = token(org)

    async def work(key: str):
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {raw}", "Idempotency-Key": key}, timeout=30
        )
        async with http:
            transport = streamable_http_client(f"{daphne}/mcp", http_client=http)
            async with Client(transport, read_timeout_seconds=30, cache=None) as client:
                first = await client.call_tool(greeter.slug, {"name": "Ada"})
                again = await client.call_tool(greeter.slug, {"name": "Ada"})
                other = await client.call_tool(greeter.slug, {"name": "Bob"})
                return first, again, other

    first, again, other = anyio.run(work, "order-1")
    assert first.structured_content["run_id"] == again.structured_content["run_id"]
    assert Run.objects.filter(orchestration=greeter).count() == 1
    assert other.is_error and "Idempotency-Key" in other.content[0].text


@pytest.fixture(scope="module")
def strict_daphne(django_db_setup, tmp_path_factory):
    """daphne with a token rate of 2 requests a minute."""
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with serve(log, THROTTLE_USER="2/min") as base:
        yield base


def test_a_token_over_the_api_rate_is_refused_with_429(strict_daphne, org):
    headers = {
        "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {token(org)}",
        "MCP-Protocol-Version": "2025-06-18",
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    answers = [
        httpx.post(f"{strict_daphne}/mcp", json=body, headers=headers, trust_env=False)
        for _ in range(3)
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[2].json()["error"] == "rate_limited"
    assert int(answers[2].headers["Retry-After"]) >= 1
