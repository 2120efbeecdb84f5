"""Tool items of agents, checked when they are saved: an item's shape (400 on its JSON path), and
through the API that an `mcp` item names a server of the organization and tools it lists."""

from __future__ import annotations

import pytest

from orchestrator.models import McpServer

pytestmark = pytest.mark.django_db

TOOLS = [
    {"name": "add", "description": "Add two integers.", "input_schema": {"type": "object"}},
    {"name": "greet", "description": "Say hello.", "input_schema": {"type": "object"}},
]


@pytest.fixture
def server(org) -> McpServer:
    return McpServer.objects.create(
        organization=org, name="tools", url="https://mcp.example.com/mcp", status="ok", tools=TOOLS
    )


def _flow(editor, tools: list, where: str = "agents"):
    agent = {"model": "builtin/echo", "tools": tools}
    step = {"id": "ask", "type": "agent", "config": {"agent": "helper", "prompt": "Hi"}}
    definition = {"nodes": [step], "edges": [], "agents": [{"name": "helper", **agent}]}
    if where == "step":
        definition["agents"] = []
        step["config"] = {"agent": agent, "prompt": "Hi"}
    if where == "step_tools":
        step["config"]["tools"] = tools
        definition["agents"][0]["tools"] = []
    return editor.post(
        "/api/v1/orchestrations", {"name": "Flow", "definition": definition}, format="json"
    )


def test_mcp_orchestration_and_approval_items_are_saved_as_sent(editor, server, editors):
    editors("ops")
    tools = [
        "http_get",
        {"mcp": "tools", "tools": ["add"], "approval": {}},
        {"orchestration": "summarise", "name": "summarise", "description": "Summarise a text."},
        {
            "mcp": str(server.id),
            "tools": ["greet"],
            "approval": {"approvers": ["ops"], "timeout_s": 600, "on_timeout": "approve"},
        },
    ]
    response = _flow(editor, tools)
    assert response.status_code == 201, response.json()
    saved = editor.get(f"/api/v1/orchestrations/{response.json()['id']}").json()
    assert saved["definition"]["agents"][0]["tools"] == tools


@pytest.mark.parametrize(
    ("tools", "path"),
    [
        ([{"mcp": ""}], "agents[0].tools[0].mcp"),
        ([{"mcp": "tools", "tools": "add"}], "agents[0].tools[0].tools"),
        ([{"mcp": "tools", "tool": ["add"]}], "agents[0].tools[0].tool"),
        (["http_get", 3], "agents[0].tools[1]"),
        ([{"name": "x"}], "agents[0].tools[0]"),
        ([{"orchestration": "s", "name": "a b", "description": ""}], "agents[0].tools[0].name"),
        ([{"mcp": "tools", "approval": {"on_timeout": "later"}}], "agents[0].tools[0].approval"),
        ([{"mcp": "tools", "approval": {"timeout_s": 0}}], "agents[0].tools[0].approval"),
        ([{"mcp": "tools", "approval": []}], "agents[0].tools[0].approval"),
        ([{"mcp": "elsewhere"}], "agents[0].tools[0].mcp"),
        ([{"mcp": "tools", "tools": ["add", "rm"]}], "agents[0].tools[0].tools[1]"),
    ],
)
def test_a_bad_tool_item_is_refused_on_its_path(editor, server, tools, path):
    response = _flow(editor, tools)
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert any(key.startswith(f"definition.{path}") for key in fields), fields


@pytest.mark.parametrize(
    ("where", "path"),
    [("step", "nodes[0].config.agent.tools[0]"), ("step_tools", "nodes[0].config.tools[0]")],
)
def test_inline_agents_and_agent_steps_tools_are_checked_too(editor, server, where, path):
    response = _flow(editor, [{"mcp": "tools", "tools": ["nope"]}], where)
    assert response.status_code == 400
    assert f"definition.{path}.tools[0]" in response.json()["fields"]
    assert "lists no tool 'nope'" in response.json()["detail"]
    assert _flow(editor, [{"mcp": "tools", "tools": ["add"]}], where).status_code == 201


def test_a_server_of_another_organization_is_not_found(editor, other_org):
    McpServer.objects.create(organization=other_org, name="theirs", url="https://x.test/mcp")
    response = _flow(editor, [{"mcp": "theirs"}])
    assert response.status_code == 400
    assert "no MCP server 'theirs'" in response.json()["detail"]


def test_an_operators_stdio_server_is_named_without_starting_it(editor, settings):
    settings.MCP_STDIO_SERVERS = {"files": {"command": "no-such-binary", "args": [], "env": None}}
    assert _flow(editor, [{"mcp": "files", "tools": ["read"]}]).status_code == 201


def test_a_library_agents_tool_items_are_checked_on_their_path(editor, server):
    good = {"name": "a", "model": "builtin/echo", "tools": [{"mcp": "tools", "tools": ["add"]}]}
    response = editor.post("/api/v1/agents", good, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["tools"] == [{"mcp": "tools", "tools": ["add"]}]
    for tools, path in (
        ([{"mcp": "tools", "tools": ["rm"]}], "tools[0].tools[0]"),
        ([{"mcp": "nowhere"}], "tools[0].mcp"),
        ([{"mcp": "tools", "approval": {"on_timeout": "x"}}], "tools[0].approval.on_timeout"),
        (["rm_rf"], "tools[0]"),
        ("http_get", "tools"),
    ):
        bad = {"name": "b", "model": "builtin/echo", "tools": tools}
        response = editor.post("/api/v1/agents", bad, format="json")
        assert response.status_code == 400
        assert path in response.json()["fields"], (tools, response.json())


def test_markdown_export_names_what_it_cannot_write(editor, server):
    response = _flow(editor, ["http_get", {"mcp": "tools"}])
    assert response.status_code == 201, response.json()
    definition = editor.get(f"/api/v1/orchestrations/{response.json()['id']}").json()
    rendered = editor.post(
        "/api/v1/orchestrations/render-markdown",
        {"name": "Flow", "definition": definition["definition"]},
        format="json",
    )
    assert rendered.status_code == 200, rendered.json()
    assert "- tools: http_get" in rendered.json()["markdown"]
    assert any("MCP" in warning for warning in rendered.json()["warnings"])


@pytest.mark.parametrize(
    ("tools", "path"),
    [
        (["http_get", "http_get"], "tools[1]"),
        (["http_get", {"tool": "http_get", "approval": {}}], "tools[1].tool"),
        ([{"orchestration": "a", "name": "http_get"}, "http_get"], "tools[1]"),
        (
            [{"orchestration": "a", "name": "ask"}, {"orchestration": "b", "name": "ask"}],
            "tools[1].name",
        ),
        ([{"mcp": "tools", "tools": ["add"]}, {"mcp": "tools"}], "tools[1].mcp"),
        ([{"orchestration": "a", "name": "greet"}, {"mcp": "tools"}], "tools[1].mcp"),
        ([{"mcp": "tools", "tools": ["add", "add"]}], "tools[0].mcp"),
    ],
)
def test_two_tools_of_one_name_are_refused_when_saved_not_when_run(editor, server, tools, path):
    response = editor.post(
        "/api/v1/agents", {"name": "a", "model": "builtin/echo", "tools": tools}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert path in response.json()["fields"], response.json()
    assert "two tools named" in response.json()["detail"]
    defined = _flow(editor, tools)
    assert defined.status_code == 400
    assert f"definition.agents[0].{path}" in defined.json()["fields"], defined.json()


def test_tools_of_distinct_names_from_one_server_are_saved(editor, server):
    tools = [
        {"mcp": "tools", "tools": ["add"]},
        {"mcp": "tools", "tools": ["greet"]},
        {"mcp": "tools", "tools": []},
        "http_get",
    ]
    response = editor.post(
        "/api/v1/agents", {"name": "a", "model": "builtin/echo", "tools": tools}, format="json"
    )
    assert response.status_code == 201, response.json()
