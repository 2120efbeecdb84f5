"""A secret in a URL never leaves with a public orchestration, wherever in it the URL sits.

Each case plants URLs carrying a password and secret-named query values in one place of a
public orchestration, then looks at everything that shows or copies it: the gallery API (list
and detail), the gallery pages and a fork (its definition and markdown).
"""

from __future__ import annotations

import copy
import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from orchestrator.models import Agent, Orchestration
from orchestrator.services.orchestrations import create_orchestration

pytestmark = pytest.mark.django_db

SECRETS = ("hunter2-pw", "sk-query-secret", "sig-fragment-secret", "nested-pw")
# Four forms a test author might not think of: userinfo with an `@` in the password, a
# secret-named query value, an OAuth-style fragment, and a URL percent-encoded in a parameter.
URLS = (
    "https://ops:hunter2-pw@hooks.example.com/in?team=a&api_key=sk-query-secret",
    "HTTPS://example.com/cb#access_token=sig-fragment-secret&state=1",
    "https://example.com/go?next=https%3A%2F%2Fu%3Anested-pw%40inner.example.com%2F",
)
PASSWORD_WITH_AT = "wss://bot:p@hunter2-pw@stream.example.com/live?X-Amz-Signature=sk-query-secret"


def _agent_node(agent) -> dict:
    return {"id": "ask", "type": "agent", "config": {"agent": agent, "prompt": "Hello"}}


def _http_url(definition: dict, url: str) -> None:
    definition["nodes"].append({"id": "call", "type": "http", "config": {"url": url}})


def _http_header(definition: dict, url: str) -> None:
    definition["nodes"].append(
        {
            "id": "call",
            "type": "http",
            "config": {
                "url": "https://hooks.example.com/in",
                "headers": {"Referer": url, "X-Api-Key": "sk-query-secret"},
            },
        }
    )


def _http_body(definition: dict, url: str) -> None:
    definition["nodes"].append(
        {
            "id": "call",
            "type": "http",
            "config": {
                "method": "POST",
                "url": "https://hooks.example.com/in",
                "body": {"callbacks": [{"href": url}], "text": f"see <{url}>."},
            },
        }
    )


def _inline_agent(definition: dict, url: str) -> None:
    definition["nodes"].append(_agent_node({"model": "openai/gpt-4o", "base_url": url}))


def _declared_agent(definition: dict, url: str) -> None:
    definition["agents"] = [{"name": "gateway", "model": "openai/gpt-4o", "base_url": url}]
    definition["nodes"].append(_agent_node("gateway"))


def _agent_prompt(definition: dict, url: str) -> None:
    node = _agent_node("default")
    node["config"]["prompt"] = f"Fetch [the feed]({url}) and summarize {{{{ input.topic }}}}."
    definition["nodes"].append(node)


def _agent_script(definition: dict, url: str) -> None:
    script = [{"tool": "http_get", "args": {"url": url}}, "done"]
    definition["nodes"].append(
        _agent_node({"model": "builtin/script", "tools": ["http_get"], "script": script})
    )


def _transform_output(definition: dict, url: str) -> None:
    definition["nodes"].append(
        {"id": "shape", "type": "transform", "config": {"output": {"links": {"feed": [url]}}}}
    )


def _input_default(definition: dict, url: str) -> None:
    definition["inputs"] = [{"name": "feed", "type": "string", "default": url}]


PLACES = {
    "http url": _http_url,
    "http header value": _http_header,
    "http body": _http_body,
    "inline agent base_url": _inline_agent,
    "declared agent base_url": _declared_agent,
    "agent prompt": _agent_prompt,
    "agent script tool args": _agent_script,
    "transform output": _transform_output,
    "input default": _input_default,
}


def _publish(org, definition: dict | None = None, **fields) -> Orchestration:
    return create_orchestration(
        org,
        {
            "name": "Leaky",
            "description": fields.pop("description", "Plain."),
            "is_public": True,
            "public_definition": True,
            **({"definition": definition} if definition is not None else {}),
            **fields,
        },
    )


def _base() -> dict:
    return {
        "inputs": [{"name": "topic", "type": "string"}],
        "nodes": [{"id": "start", "type": "transform", "config": {"output": "{{ input.topic }}"}}],
        "edges": [],
    }


def _everything_shown(source: Orchestration, outsider: APIClient) -> dict[str, str]:
    """Every text a stranger can get of `source`, by where it came from."""
    anyone = APIClient()
    forked = outsider.post(f"/api/v1/gallery/{source.pk}/fork")
    assert forked.status_code == 201, forked.json()
    fork_id = forked.json()["id"]
    return {
        "gallery list": anyone.get("/api/v1/gallery").content.decode(),
        "gallery detail": anyone.get(f"/api/v1/gallery/{source.pk}").content.decode(),
        "gallery page": Client().get(f"/gallery/{source.pk}/").content.decode(),
        "gallery list page": Client().get("/gallery/").content.decode(),
        "fork": json.dumps(outsider.get(f"/api/v1/orchestrations/{fork_id}").json()),
    }


def _assert_no_secret(shown: dict[str, str]) -> None:
    for where, text in shown.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} shown in the {where}"


@pytest.mark.parametrize("url", [*URLS, PASSWORD_WITH_AT])
@pytest.mark.parametrize("place", PLACES)
def test_no_url_secret_leaves_in_the_gallery_or_a_fork(org, outsider, place, url):
    definition = _base()
    PLACES[place](definition, url)
    source = _publish(org, definition)
    shown = _everything_shown(source, outsider)
    _assert_no_secret(shown)
    # What is scrubbed is the secret, not the URL: the host is still there to see and edit.
    host = url.split("@")[-1].split("/")[0] if "@" in url.split("?")[0] else "example.com"
    assert host in shown["gallery detail"] and host in shown["fork"]


@pytest.mark.parametrize("url", URLS)
def test_a_library_agent_copied_into_the_public_definition_loses_its_url_secrets(
    org, outsider, url
):
    Agent.objects.create(organization=org, name="gateway", model="openai/gpt-4o", base_url=url)
    definition = _base()
    definition["nodes"].append(_agent_node("gateway"))
    source = _publish(org, definition)
    shown = _everything_shown(source, outsider)
    _assert_no_secret(shown)
    public = json.loads(shown["gallery detail"])["definition"]
    assert public["agents"][0]["name"] == "gateway"
    assert "example.com" in public["agents"][0]["base_url"]


def test_a_markdown_source_with_url_secrets_publishes_and_forks_without_them(org, outsider):
    markdown = f"""# Leaky
Reads a feed.

## Agents
### gateway
- model: openai/gpt-4o
- base_url: {URLS[0]}
Use {URLS[1]} when asked.

## Steps
### ask
- agent: gateway
Fetch {URLS[2]} please.
"""
    source = _publish(org, markdown=markdown)
    assert "hunter2-pw" in source.markdown
    _assert_no_secret(_everything_shown(source, outsider))


@pytest.mark.parametrize("url", URLS)
def test_the_public_description_shows_its_links_without_their_secrets(org, outsider, url):
    source = _publish(org, _base(), description=f"Docs: [the API]({url}), or {url}.")
    shown = _everything_shown(source, outsider)
    _assert_no_secret(shown)
    assert "example.com" in shown["gallery page"]


def test_templates_and_harmless_urls_are_published_as_written(org):
    urls = [
        "{{ input.base }}/orgs/{{ input.org }}?page=2&q={{ input.q | default('a b') }}",
        "https://medium.com/@someone/post?utm_source=x#section",
        "https://example.com/design?signal=on&page=2",
    ]
    definition = _base()
    definition["nodes"].append(
        {"id": "shape", "type": "transform", "config": {"output": copy.copy(urls)}}
    )
    source = _publish(org, definition)
    public = APIClient().get(f"/api/v1/gallery/{source.pk}").json()["definition"]
    output = {n["id"]: n for n in public["nodes"]}["shape"]["config"]["output"]
    assert output == urls


def test_a_secret_query_value_given_as_a_template_is_emptied_too(org):
    definition = _base()
    _http_url(definition, "https://h.example.com/x?token={{ input.topic }}&page=1")
    source = _publish(org, definition)
    public = APIClient().get(f"/api/v1/gallery/{source.pk}").json()["definition"]
    url = {n["id"]: n for n in public["nodes"]}["call"]["config"]["url"]
    assert url == "https://h.example.com/x?token=&page=1"
