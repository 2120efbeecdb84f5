"""GET /models: what the editor offers, priced from the maintained table."""

from __future__ import annotations

import pytest
from genai_prices import Usage, calc_price

pytestmark = pytest.mark.django_db

URL = "/api/v1/models"


def all_items(client, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        body = client.get(URL, query).json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def by_model(client) -> dict[str, dict]:
    return {item["model"]: item for item in all_items(client, limit=200)}


def test_a_viewer_lists_models_with_the_documented_shape(viewer):
    body = viewer.get(URL).json()
    assert set(body) == {"items", "next_cursor"}
    assert len(body["items"]) == 50 and body["next_cursor"]
    keys = {"model", "provider", "aliases", "price", "context_window", "configured"}
    assert all(set(item) == keys for item in body["items"])


def test_pages_cover_every_model_once(viewer):
    paged = [item["model"] for item in all_items(viewer, limit=7)]
    assert len(paged) == len(set(paged)) == len(by_model(viewer))


def test_each_provider_is_offered_and_openai_prices_match_the_table(viewer):
    models = by_model(viewer)
    assert {item["provider"] for item in models.values()} == {
        "builtin",
        "openai",
        "anthropic",
        "google",
    }
    gpt = models["openai/gpt-4o"]
    table = calc_price(Usage(input_tokens=1000, output_tokens=1000), "gpt-4o", provider_id="openai")
    assert gpt["price"]["input_per_1k"] == pytest.approx(float(table.input_price))
    assert gpt["price"]["output_per_1k"] == pytest.approx(float(table.output_price))
    assert gpt["context_window"] == 128000
    assert models["builtin/echo"]["price"] == {"input_per_1k": 0, "output_per_1k": 0}


def test_aliases_and_default_name_the_models_they_stand_for(viewer, settings):
    settings.MODEL_ALIASES = {"sonnet": "anthropic/claude-sonnet-5-5", "mine": "openai/my-local"}
    settings.DEFAULT_MODEL = "sonnet"
    models = by_model(viewer)
    assert models["anthropic/claude-sonnet-5-5"]["aliases"] == ["default", "sonnet"]
    assert models["builtin/echo"]["aliases"] == []
    # an alias to a model the table does not know is offered, without a price
    assert models["openai/my-local"]["price"] is None
    assert models["openai/my-local"]["aliases"] == ["mine"]


def test_configured_follows_the_providers_key(viewer, settings):
    settings.OPENAI_API_KEY = ""
    settings.ANTHROPIC_API_KEY = "sk-ant-test"
    settings.GOOGLE_API_KEY = ""
    models = by_model(viewer)
    assert models["openai/gpt-4o"]["configured"] is False
    assert models["anthropic/claude-sonnet-5-5"]["configured"] is True
    assert models["builtin/script"]["configured"] is True
    settings.OPENAI_API_KEY = "sk-test"
    assert by_model(viewer)["openai/gpt-4o"]["configured"] is True


@pytest.mark.parametrize(
    ("query", "field"),
    [({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"), ({"cursor": "@@"}, "cursor")],
)
def test_a_bad_limit_or_cursor_is_a_400_naming_it(viewer, query, field):
    response = viewer.get(URL, query)
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_models_need_a_token(client):
    assert client.get(URL).status_code == 401
