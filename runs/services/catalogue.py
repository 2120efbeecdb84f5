"""`GET /models`: what the editor offers, with prices, aliases and whether a key is set."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from orchestrator.definition.nodes import BUILTIN_MODELS, resolve_model
from runs.engine.pricing import Price, catalogue
from runs.services.resolve import provider_key


def model_catalogue() -> list[dict[str, Any]]:
    """The builtin models, then every model of the price table's providers, by name; a model an
    alias names but the table does not list is offered too (unpriced)."""
    aliases: dict[str, list[str]] = {}
    for alias, target in sorted(settings.MODEL_ALIASES.items()):
        aliases.setdefault(target, []).append(alias)
    try:
        default = resolve_model(
            "default", default_model=settings.DEFAULT_MODEL, aliases=settings.MODEL_ALIASES
        )
    except ValueError:
        default = None  # a misconfigured DEFAULT_MODEL: its steps fail with the reason
    if default:
        aliases.setdefault(default, []).insert(0, "default")
    free = Price(0.0, 0.0)  # offline models cost nothing
    items = [_item(model, "builtin", free, None, aliases) for model in BUILTIN_MODELS]
    listed = set(BUILTIN_MODELS)
    for entry in catalogue():
        items.append(_item(entry.model, entry.provider, entry.price, entry.context_window, aliases))
        listed.add(entry.model)
    for target in sorted(set(aliases) - listed):
        items.append(_item(target, target.split("/", 1)[0], None, None, aliases))
    return items


def _item(
    model: str,
    provider: str,
    price: Price | None,
    context_window: int | None,
    aliases: dict[str, Any],
) -> dict[str, Any]:
    return {
        "model": model,
        "provider": provider,
        "aliases": aliases.get(model, []),
        "price": (
            {"input_per_1k": price.input_per_1k, "output_per_1k": price.output_per_1k}
            if price
            else None
        ),
        "context_window": context_window,
        # builtin models need no key; the others a key in the environment (an agent may still
        # bring its own through a credential).
        "configured": provider == "builtin" or bool(provider_key(provider)),
    }
