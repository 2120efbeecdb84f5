"""`output_schema` (JSON Schema for an agent's answer): on library agents, on a definition's
agents and on an agent step, checked when saved and handed to the executor with the step's
overriding its agent's."""

from __future__ import annotations

import pytest

from orchestrator.models import Agent
from runs.models import Run
from runs.services import resolve

pytestmark = pytest.mark.django_db

URL = "/api/v1/orchestrations"
ANSWER = {
    "type": "object",
    "properties": {"score": {"type": "integer"}, "reason": {"type": "string"}},
    "required": ["score"],
}
VERDICT = {"type": "object", "properties": {"ok": {"type": "boolean"}}}


def flow(config: dict, agents: list | None = None) -> dict:
    definition: dict = {
        "nodes": [{"id": "ask", "type": "agent", "config": {"prompt": "Hi", **config}}]
    }
    if agents is not None:
        definition["agents"] = agents
    return {"name": "Flow", "definition": definition}


def test_a_library_agent_keeps_its_output_schema_and_can_drop_it(editor):
    created = editor.post(
        "/api/v1/agents",
        {"name": "judge", "model": "builtin/echo", "output_schema": ANSWER},
        format="json",
    )
    assert created.status_code == 201, created.json()
    url = f"/api/v1/agents/{created.json()['id']}"
    assert editor.get(url).json()["output_schema"] == ANSWER
    cleared = editor.patch(url, {"output_schema": None}, format="json")
    assert cleared.json()["output_schema"] is None
    assert Agent.objects.get(name="judge").output_schema is None


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ({"type": "nosuch"}, "output_schema.type"),
        ({"properties": {"a": {"type": 5}}}, "output_schema.properties.a.type"),
        # A backreference: RE2 cannot run it, so it is refused at save, not at every answer.
        ({"properties": {"a": {"pattern": "(a)\\1"}}}, "output_schema.properties.a.pattern"),
        (["not", "an", "object"], "output_schema"),
        ("a string", "output_schema"),
    ],
)
def test_a_library_agent_with_a_bad_output_schema_is_a_400_naming_the_path(editor, schema, field):
    response = editor.post(
        "/api/v1/agents",
        {"name": "judge", "model": "builtin/echo", "output_schema": schema},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation_error"
    assert list(body["fields"]) == [field], body
    assert not Agent.objects.exists()


def test_output_schemas_in_a_definition_are_saved_as_written(editor):
    response = editor.post(
        URL,
        flow(
            {"agent": "judge", "output_schema": ANSWER},
            agents=[{"name": "judge", "model": "builtin/echo", "output_schema": VERDICT}],
        ),
        format="json",
    )
    assert response.status_code == 201, response.json()
    definition = response.json()["definition"]
    assert definition["agents"][0]["output_schema"] == VERDICT
    assert definition["nodes"][0]["config"]["output_schema"] == ANSWER


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            flow({"agent": {"model": "builtin/echo"}, "output_schema": {"type": "nosuch"}}),
            "definition.nodes[0].config.output_schema.type",
        ),
        (
            flow({"agent": {"model": "builtin/echo", "output_schema": {"required": "score"}}}),
            "definition.nodes[0].config.agent.output_schema.required",
        ),
        (
            flow(
                {"agent": "judge"},
                agents=[
                    {
                        "name": "judge",
                        "model": "builtin/echo",
                        "output_schema": {"properties": {"a": {"pattern": "(?=a)"}}},
                    }
                ],
            ),
            "definition.agents[0].output_schema.properties.a.pattern",
        ),
        (
            flow({"agent": {"model": "builtin/echo"}, "output_schema": "json please"}),
            "definition.nodes[0].config.output_schema",
        ),
    ],
)
def test_a_bad_output_schema_in_a_definition_is_a_400_naming_the_path(editor, body, field):
    response = editor.post(URL, body, format="json")
    assert response.status_code == 400
    payload = response.json()
    assert payload["error"] == "validation_error"
    assert list(payload["fields"]) == [field], payload


def _spec(org, definition: dict, config: dict):
    return resolve.agent(Run(organization=org), definition, config)


def test_the_executor_gets_the_steps_schema_over_its_agents(org):
    Agent.objects.create(organization=org, name="lib", model="builtin/echo", output_schema=VERDICT)
    declared = {"agents": [{"name": "judge", "model": "builtin/echo", "output_schema": VERDICT}]}
    inline = {"model": "builtin/echo", "output_schema": VERDICT}
    for definition, ref in ((declared, "judge"), ({}, "lib"), ({}, inline)):
        assert _spec(org, definition, {"agent": ref}).output_schema == VERDICT
        overridden = _spec(org, definition, {"agent": ref, "output_schema": ANSWER})
        assert overridden.output_schema == ANSWER
    assert _spec(org, {}, {"agent": {"model": "builtin/echo"}}).output_schema is None
    assert _spec(org, {}, {"agent": "default", "output_schema": ANSWER}).output_schema == ANSWER
