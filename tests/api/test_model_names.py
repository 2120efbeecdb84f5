"""Model names in definitions and agents: providers, `default` and aliases (MODEL_ALIASES)."""

from __future__ import annotations

import pytest

from runs.models import Run, StepRun
from tests.api.helpers import MARKDOWN
from tests.runs.harness import drain

pytestmark = pytest.mark.django_db

URL = "/api/v1/orchestrations"


def agent_flow(model: str) -> dict:
    return {
        "name": "Flow",
        "status": "active",
        "definition": {
            "nodes": [
                {
                    "id": "ask",
                    "type": "agent",
                    "config": {"agent": {"model": model}, "prompt": "Hi"},
                }
            ]
        },
    }


def test_a_markdown_definition_with_model_sonnet_is_saved_as_written(editor):
    source = MARKDOWN.replace("- model: builtin/echo", "- model: sonnet")
    response = editor.post(URL, {"markdown": source}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["definition"]["agents"][0]["model"] == "sonnet"


@pytest.mark.parametrize("model", ["nosuch", "Sonnet", "gpt4"])
def test_an_unknown_alias_is_a_400_naming_the_field(editor, model):
    response = editor.post(URL, agent_flow(model), format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation_error"
    assert (
        f"unknown model alias '{model}'"
        in body["fields"]["definition.nodes[0].config.agent.model"][0]
    )


def test_an_unknown_alias_in_markdown_names_the_agent(editor):
    source = MARKDOWN.replace("- model: builtin/echo", "- model: nosuch")
    response = editor.post(URL, {"markdown": source}, format="json")
    assert response.status_code == 400
    assert "definition.agents[0].model" in response.json()["fields"]


@pytest.mark.parametrize("model", ["mistral/large", "openai/", "anthropic", "builtin/nope"])
def test_an_unknown_provider_is_a_400_naming_the_field(editor, model):
    response = editor.post(URL, agent_flow(model), format="json")
    assert response.status_code == 400
    assert "definition.nodes[0].config.agent.model" in response.json()["fields"]


def test_an_alias_added_through_the_setting_is_accepted(editor, settings):
    settings.MODEL_ALIASES = {**settings.MODEL_ALIASES, "local": "builtin/echo"}
    assert editor.post(URL, agent_flow("local"), format="json").status_code == 201


def test_an_org_agent_with_an_unknown_alias_is_refused_and_a_known_one_kept(editor):
    refused = editor.post("/api/v1/agents", {"name": "a", "model": "nosuch"}, format="json")
    assert refused.status_code == 400
    assert "model" in refused.json()["fields"]
    kept = editor.post("/api/v1/agents", {"name": "a", "model": "opus"}, format="json")
    assert kept.status_code == 201
    assert kept.json()["model"] == "opus"


def test_an_alias_runs_the_model_it_names(editor, settings, org):
    settings.MODEL_ALIASES = {**settings.MODEL_ALIASES, "local": "builtin/echo"}
    created = editor.post(URL, agent_flow("local"), format="json").json()
    editor.post(f"{URL}/{created['id']}/runs", {"input": {}}, format="json")
    drain()
    step = StepRun.objects.get(run__orchestration_id=created["id"])
    assert (step.status, step.model, step.output) == ("succeeded", "builtin/echo", "Hi")


def test_default_follows_the_setting_when_the_step_runs(editor, settings):
    created = editor.post(URL, agent_flow("default"), format="json").json()
    assert created["definition"]["nodes"][0]["config"]["agent"]["model"] == "default"
    settings.DEFAULT_MODEL = "builtin/script"
    editor.post(f"{URL}/{created['id']}/runs", {"input": {}}, format="json")
    drain()
    assert StepRun.objects.get(run__orchestration_id=created["id"]).model == "builtin/script"


def test_a_default_model_given_as_an_alias_resolves_through_the_aliases(editor, settings):
    settings.MODEL_ALIASES = {**settings.MODEL_ALIASES, "local": "builtin/echo"}
    settings.DEFAULT_MODEL = "local"
    created = editor.post(URL, agent_flow("default"), format="json").json()
    editor.post(f"{URL}/{created['id']}/runs", {"input": {}}, format="json")
    drain()
    assert StepRun.objects.get(run__orchestration_id=created["id"]).model == "builtin/echo"


@pytest.mark.parametrize("model", ["sonnet", "gemini", "anthropic/claude-opus-5-5"])
def test_a_provider_without_a_key_fails_the_step_with_a_sentence(editor, settings, model):
    settings.ANTHROPIC_API_KEY = settings.GOOGLE_API_KEY = ""
    created = editor.post(URL, agent_flow(model), format="json").json()
    editor.post(f"{URL}/{created['id']}/runs", {"input": {}}, format="json")
    drain()
    step = StepRun.objects.get(run__orchestration_id=created["id"])
    assert step.status == "failed"
    assert step.error["message"].startswith("no API key for the ")
    assert StepRun.objects.filter(run__orchestration_id=created["id"]).count() == 1


def test_an_alias_removed_after_saving_fails_the_step_not_the_worker(editor, settings):
    settings.MODEL_ALIASES = {**settings.MODEL_ALIASES, "local": "builtin/echo"}
    created = editor.post(URL, agent_flow("local"), format="json").json()
    settings.MODEL_ALIASES = {}
    editor.post(f"{URL}/{created['id']}/runs", {"input": {}}, format="json")
    drain()
    run = Run.objects.get(orchestration_id=created["id"])
    assert run.status == "failed"
    assert "unknown model alias 'local'" in run.error["detail"]


def _library_agent(editor, model: str):
    return editor.post("/api/v1/agents", {"name": "a", "model": model}, format="json"), "model"


def _definition_agent(editor, model: str):
    body = {
        "name": "Flow",
        "definition": {
            "agents": [{"name": "writer", "model": model}],
            "nodes": [
                {"id": "ask", "type": "agent", "config": {"agent": "writer", "prompt": "Hi"}}
            ],
        },
    }
    return editor.post(URL, body, format="json"), "definition.agents[0].model"


def _inline_agent(editor, model: str):
    return editor.post(
        URL, agent_flow(model), format="json"
    ), "definition.nodes[0].config.agent.model"


@pytest.mark.parametrize("place", [_library_agent, _definition_agent, _inline_agent])
@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("mistral/large", "unknown model provider"),
        ("nosuch", "unknown model alias 'nosuch'"),
        ("builtin/nope", "unknown builtin model"),
        ("openai/", "the model's name after 'openai/'"),
        ("openai/gpt 4", "the model's name after 'openai/'"),
    ],
)
def test_an_unknown_provider_or_alias_is_a_400_naming_the_field_wherever_the_agent_is(
    editor, place, model, says
):
    response, field = place(editor, model)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation_error"
    assert list(body["fields"]) == [field], body
    assert says in body["fields"][field][0]
