"""The agent step's inspector in chromium: the model picker fed by GET /models, the warning for
a provider without a key, the credential picker and the output schema editor."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from orchestrator.services.credentials import create_credential
from orchestrator.services.orchestrations import create_orchestration
from runs.services.catalogue import model_catalogue
from tests.e2e.agents import click_node

pytestmark = [pytest.mark.browser, pytest.mark.worker]

SCHEMA = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}


def test_pick_a_model_by_provider_see_the_missing_key_and_save_an_output_schema(page, org, editor):
    create_credential(org, name="team-anthropic", kind="api_key", value="sk-test")
    orchestration = create_orchestration(
        org,
        {
            "name": "Rated",
            "definition": {
                "nodes": [
                    {
                        "id": "rate",
                        "type": "agent",
                        "config": {
                            "agent": {"name": "judge", "model": "builtin/echo"},
                            "prompt": "Rate {{ input }}",
                        },
                    }
                ]
            },
        },
    )
    chosen = next(m for m in model_catalogue() if m["provider"] == "anthropic" and m["aliases"])
    page.goto(f"/orchestrations/{orchestration.pk}/")
    click_node(page, "rate")
    inspector = page.locator("#tab-inspector")
    picker = inspector.locator("select[name=model]")
    option = picker.locator(f'optgroup[label="anthropic"] > option[value="{chosen["model"]}"]')
    expect(option).to_have_count(1)  # grouped by provider once GET /models has answered
    price = chosen["price"]
    expect(option).to_contain_text(f"in / ${price['output_per_1k']:g} out per 1k")
    expect(option).to_contain_text(f"aliases: {', '.join(chosen['aliases'])}")
    assert picker.locator("optgroup").evaluate_all("gs => gs.map(g => g.label)")[:4] == [
        "builtin",
        "anthropic",
        "google",
        "openai",
    ]
    warning = inspector.locator(".model-warning")
    expect(warning).to_be_hidden()  # builtin models need no key

    picker.select_option(chosen["model"])
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("No API key for anthropic is set on this server")
    expect(warning).to_contain_text("choose a credential")
    credential = inspector.locator("select[name=credential]")
    credential.select_option("team-anthropic")
    expect(warning).to_be_hidden()
    expect(page.locator('.gnode[data-node-id="rate"]')).to_contain_text(chosen["model"])

    schema = inspector.locator(".field", has_text="Output schema").locator("textarea")
    schema.fill('{"type": "object",')
    expect(inspector.locator(".field", has_text="Output schema")).to_contain_text("Not valid JSON")
    page.click("#save")
    expect(page.locator(".flash.bad")).to_contain_text("does not hold a valid value")
    schema.fill(json.dumps(SCHEMA))
    expect(
        inspector.locator(".field", has_text="Output schema").locator(".field-error")
    ).to_be_empty()
    page.click("#save")
    expect(page.locator(".flash.ok")).to_contain_text("Saved as version 2")

    saved = editor.get(f"/api/v1/orchestrations/{orchestration.pk}").json()["definition"]
    config = saved["nodes"][0]["config"]
    assert config["agent"]["model"] == chosen["model"]
    assert config["agent"]["credential"] == "team-anthropic"
    assert config["output_schema"] == SCHEMA


def test_a_definition_agent_shows_unpriced_models_as_such_as_text_and_saves_its_schema(
    page, org, editor
):
    orchestration = create_orchestration(
        org,
        {
            "name": "Local",
            "definition": {
                "agents": [{"name": "judge", "model": "openai/llama3.1"}],
                "nodes": [
                    {
                        "id": "rate",
                        "type": "agent",
                        "config": {"agent": "judge", "prompt": "Rate it"},
                        "position": {"x": 0, "y": 0},
                    }
                ],
            },
        },
    )
    hostile = "openai/<img src=x onerror=window.pwned=1>"
    catalogue = {
        "items": [
            {
                "model": "builtin/echo",
                "provider": "builtin",
                "aliases": ["default"],
                "price": {"input_per_1k": 0, "output_per_1k": 0},
                "context_window": None,
                "configured": True,
            },
            *(
                {
                    "model": model,
                    "provider": "openai",
                    "aliases": aliases,
                    "price": None,
                    "context_window": None,
                    "configured": True,
                }
                for model, aliases in (("openai/llama3.1", ["local"]), (hostile, []))
            ),
        ],
        "next_cursor": None,
    }
    # What the server answers is the server's business; the picker shows whatever it lists.
    page.route("**/api/v1/models?*", lambda route: route.fulfill(json=catalogue))
    page.goto(f"/orchestrations/{orchestration.pk}/")
    expect(page.locator(".gnode")).to_have_count(1)
    agent = page.locator('#tab-inspector details[data-agent="judge"]')
    agent.locator("summary").click()
    picker = agent.locator("select[name=model]")
    local = picker.locator('optgroup[label="openai"] > option[value="openai/llama3.1"]')
    expect(local).to_have_text("openai/llama3.1 — unpriced · aliases: local")
    expect(local).to_have_js_property("selected", True)
    expect(picker.locator("option", has_text="onerror")).to_have_text(f"{hostile} — unpriced")
    assert page.evaluate("window.pwned") is None
    expect(agent.locator(".model-warning")).to_be_hidden()  # a configured provider

    schema = agent.locator(".field", has_text="Output schema").locator("textarea")
    schema.fill("[1, 2]")
    expect(agent.locator(".field", has_text="Output schema")).to_contain_text(
        "A JSON Schema is an object"
    )
    schema.fill(json.dumps(SCHEMA))
    page.click("#save")
    expect(page.locator(".flash.ok")).to_contain_text("Saved as version 2")
    saved = editor.get(f"/api/v1/orchestrations/{orchestration.pk}").json()["definition"]
    assert saved["agents"][0]["output_schema"] == SCHEMA
    assert saved["agents"][0]["model"] == "openai/llama3.1"


def test_each_inspector_field_is_named_by_its_label(page, org):
    """A label names its control (screen readers read it, a click on it focuses the control),
    in a step's inspector and in a definition agent's form."""
    orchestration = create_orchestration(
        org,
        {
            "name": "Labelled",
            "definition": {
                "agents": [{"name": "judge", "model": "builtin/echo"}],
                "nodes": [
                    {
                        "id": "rate",
                        "type": "agent",
                        "config": {"agent": "judge", "prompt": "Rate it"},
                    }
                ],
            },
        },
    )
    page.goto(f"/orchestrations/{orchestration.pk}/")
    agent = page.locator('#tab-inspector details[data-agent="judge"]')
    agent.locator("summary").click()
    expect(agent.get_by_label("System prompt")).to_be_visible()
    expect(agent.get_by_label("Output schema (JSON Schema)")).to_be_visible()
    click_node(page, "rate")
    inspector = page.locator("#tab-inspector")
    expect(inspector.get_by_label("Prompt", exact=True)).to_have_value("Rate it")
    inspector.get_by_text("Max turns", exact=True).click()
    expect(inspector.get_by_label("Max turns")).to_be_focused()
    # Labels are unique on the page: two forms drawn one after the other share no id.
    ids = page.evaluate("() => [...document.querySelectorAll('[id]')].map(e => e.id)")
    assert len(ids) == len(set(ids))
