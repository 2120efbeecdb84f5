"""An agent calls the tools of an MCP server: a run on a local OpenAI-compatible model server
whose agent names a registered MCP server (and an operator's stdio one), executed as a worker
executes it, with the calls, their arguments and their results in the run's events."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from orchestrator.models import McpServer, Organization
from orchestrator.services.credentials import create_credential
from runs.models import RunEvent, StepRun
from runs.services import mcp_servers, outputs
from tests.mcp_servers import mcp_server
from tests.runs.harness import run_to_rest
from tests.runs.servers import local_server, reply
from tests.serving import ROOT

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def tools_url() -> Iterator[str]:
    with mcp_server(hostile=True) as url:
        yield url


@pytest.fixture
def model() -> Iterator:
    with local_server() as running:
        yield running


@pytest.fixture
def loopback(settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.MCP_CLIENT_TIMEOUT_S = 10.0


def _register(org: Organization, url: str, name: str = "tools"):
    server = mcp_servers.create_server(org, name=name, url=url)
    assert server.status == "ok", server.error
    return server


def _agent(model, tools: list) -> dict:
    return {"model": "openai/test-model", "base_url": f"{model.url}/v1", "tools": tools}


def _events(run, kind: str) -> list[dict]:
    return [e.data for e in RunEvent.objects.filter(run=run, type=kind).order_by("seq")]


def _offered(request: dict) -> list[str]:
    return [tool["function"]["name"] for tool in request.get("tools", [])]


def test_an_agent_calls_a_registered_servers_tools_and_reads_their_results(
    org, make_flow, model, tools_url, loopback
):
    _register(org, tools_url)
    model.answers = [
        reply(tools=[("add", {"a": 2, "b": 3}), ("broken", {})]),
        reply("2 + 3 = 5."),
    ]
    agent = _agent(model, ["http_get", {"mcp": "tools", "tools": ["add", "broken"]}])
    node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Add 2 and 3"}}
    run = run_to_rest(make_flow([node]))
    assert run.status == "succeeded", run.error
    assert run.output == "2 + 3 = 5."
    # Only the item's tools (and the built-in one) are offered, with the server's descriptions.
    first = model.requests[0]
    assert sorted(_offered(first)) == ["add", "broken", "http_get"]
    add = next(t["function"] for t in first["tools"] if t["function"]["name"] == "add")
    assert add["description"] == "Add two integers."
    assert add["parameters"]["required"] == ["a", "b"]
    calls = _events(run, "tool_execution")
    assert [(c["tool_name"], c["args"]) for c in calls] == [
        ("add", {"a": 2, "b": 3}),
        ("broken", {}),
    ]
    results = _events(run, "tool_result")
    assert [(r["tool_name"], r["ok"]) for r in results] == [("add", True), ("broken", False)]
    assert results[0]["preview"] == '{"result": 5}'
    assert (
        results[1]["preview"].startswith("error:")
        and "this tool is broken" in results[1]["preview"]
    )
    # The results went back to the model as tool results, the error as text.
    sent = [m for m in model.requests[1]["messages"] if m["role"] == "tool"]
    assert sent[0]["content"] == '{"result": 5}'
    assert "this tool is broken" in sent[1]["content"]
    assert StepRun.objects.get(run=run).tool_calls == 2


def test_an_item_without_tools_offers_all_the_servers_tools_and_a_step_adds_its_own(
    org, make_flow, model, tools_url, loopback
):
    _register(org, tools_url)
    model.answers = [reply("Nothing to do.")]
    config = {
        "agent": _agent(model, [{"mcp": "tools", "tools": ["greet"]}]),
        "tools": ["http_get"],
        "prompt": "Hi",
    }
    run = run_to_rest(make_flow([{"id": "ask", "type": "agent", "config": config}]))
    assert run.status == "succeeded", run.error
    assert sorted(_offered(model.requests[0])) == ["greet", "http_get"]

    model.answers = [reply("Nothing to do.")]
    node = {
        "id": "ask",
        "type": "agent",
        "config": {"agent": _agent(model, [{"mcp": "tools"}]), "prompt": "Hi"},
    }
    run = run_to_rest(make_flow([node], name="All"))
    assert run.status == "succeeded", run.error
    offered = _offered(model.requests[1])
    assert {"add", "greet", "broken"} <= set(offered)
    # The hostile name is offered under a name providers accept, never as markup.
    assert all("<" not in name for name in offered)


def test_a_server_at_an_inside_address_is_refused_when_the_network_is_not_allowed(
    org, make_flow, tools_url, loopback, settings
):
    _register(org, tools_url)
    settings.HTTP_ALLOWED_NETWORKS = []
    # An offline model, so that the MCP server is the only thing the step reaches for.
    agent = {"model": "builtin/script", "tools": [{"mcp": "tools", "tools": ["add"]}]}
    script = [{"tool": "add", "args": {"a": 1, "b": 1}}, "done"]
    config = {"agent": agent, "prompt": "Add", "script": script}
    run = run_to_rest(make_flow([{"id": "ask", "type": "agent", "config": config}]))
    assert run.status == "failed"
    step = StepRun.objects.get(run=run)
    assert step.status == "failed"
    assert "internal addresses are refused" in step.error["message"]
    assert _events(run, "tool_execution")[0]["tool_name"] == "add"


def test_an_operators_stdio_server_is_named_by_the_agent(org, make_flow, model, settings):
    settings.HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.MCP_CLIENT_TIMEOUT_S = 20.0
    script = str(ROOT / "tests" / "mcp_stdio_server.py")
    settings.MCP_STDIO_SERVERS = {"local": {"command": sys.executable, "args": [script]}}
    model.answers = [reply(tools=[("echo", {"text": "<b>bold</b>"})]), reply("Echoed.")]
    agent = _agent(model, [{"mcp": "local", "tools": ["echo"]}])
    node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Echo"}}
    run = run_to_rest(make_flow([node]))
    assert run.status == "succeeded", run.error
    assert _events(run, "tool_execution")[0]["args"] == {"text": "<b>bold</b>"}
    assert _events(run, "tool_result")[0]["preview"] == '{"result": "<b>bold</b>"}'


def test_a_tool_the_server_no_longer_lists_fails_the_step_with_a_sentence(
    org, make_flow, model, tools_url, loopback
):
    server = _register(org, tools_url)
    agent = _agent(model, [{"mcp": "tools", "tools": ["add"]}])
    flow = make_flow([{"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "x"}}])
    server.tools = [t for t in server.tools if t["name"] != "add"]
    server.save()
    run = run_to_rest(flow)
    assert run.status == "failed"
    assert "lists no tool 'add'" in StepRun.objects.get(run=run).error["message"]


def test_the_servers_credential_goes_on_the_wire_and_is_masked_in_what_comes_back(
    org, make_flow, loopback
):
    token = "mcp-secret-token-0123456789"
    credential = create_credential(org, name="mcp-token", kind="bearer", value=token)
    with mcp_server(require_header=("Authorization", f"Bearer {token}")) as url:
        server = mcp_servers.create_server(org, name="guarded", url=url, credential=credential)
        assert server.status == "ok", server.error
        agent = {"model": "builtin/script", "tools": [{"mcp": "guarded", "tools": ["greet"]}]}
        # The server echoes what it is given: here, the credential's value.
        script = [{"tool": "greet", "args": {"name": token}}, "Greeted."]
        config = {"agent": agent, "prompt": "Greet", "script": script}
        run = run_to_rest(make_flow([{"id": "ask", "type": "agent", "config": config}]))
    assert run.status == "succeeded", run.error
    result = _events(run, "tool_result")[0]
    assert result["ok"] is True
    assert result["preview"] == '{"result": "Hello, [redacted]!"}'
    stored = json.dumps(list(RunEvent.objects.filter(run=run).values_list("data", flat=True)))
    assert token not in stored


def test_two_tools_of_one_name_fail_the_step_before_the_model_is_called(
    org, make_flow, tools_url, loopback
):
    _register(org, tools_url)
    again = _register(org, tools_url, name="again")
    # Saving refuses two tools of one name in the servers' listings; one that lists more after
    # the flow was saved (refreshed since) is caught when the step starts.
    McpServer.objects.filter(pk=again.pk).update(tools=[])
    agent = {"model": "builtin/echo", "tools": [{"mcp": "tools"}, {"mcp": "again"}]}
    node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Hi"}}
    flow = make_flow([node])
    mcp_servers.refresh(again)
    run = run_to_rest(flow)
    assert run.status == "failed"
    assert "two tools named 'add'" in StepRun.objects.get(run=run).error["message"]
    assert not _events(run, "agent_turn")


def test_a_tool_that_needs_approval_is_never_called_unasked(org, make_flow, tools_url, loopback):
    _register(org, tools_url)
    agent = {
        "model": "builtin/script",
        "tools": [{"mcp": "tools", "tools": ["add"], "approval": {}}],
    }
    script = [{"tool": "add", "args": {"a": 1, "b": 2}}, "Added."]
    config = {"agent": agent, "prompt": "Add", "script": script}
    run = run_to_rest(make_flow([{"id": "ask", "type": "agent", "config": config}]))
    # Deferred for a person (the step cannot go on without one), never called on its own.
    assert run.status != "succeeded"
    assert _events(run, "tool_execution")[0]["tool_name"] == "add"
    assert not _events(run, "tool_result")


def test_a_refine_uses_the_agent_without_its_tools(org, make_flow, tools_url, loopback):
    server = _register(org, tools_url)
    agent = {"model": "builtin/echo", "tools": ["http_get", {"mcp": "tools", "tools": ["add"]}]}
    node = {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Hi"}}
    run = run_to_rest(make_flow([node]))
    assert run.status == "succeeded", run.error
    server.delete()
    spec = outputs.refine_agent(run)
    assert (spec.model, spec.tools, spec.tool_sources) == ("builtin/echo", (), ())
