"""What a model call costs: the agent's own `price`, else the maintained table of genai-prices.

One home for prices: the agent step's cost, the budget checks and `GET /models` read them here.
A model that neither the agent nor the table prices costs `None` (unknown), never 0; the offline
`builtin/` models cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelInfo, TieredPrices

# Our providers that the price table knows, by their id there.
TABLE_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "google": "google"}
# The table's google entry also lists other makers' models served on Vertex; ours is Gemini.
_GOOGLE_FAMILY = "gemini"


@dataclass(frozen=True)
class Price:
    """USD per 1,000 tokens, as an agent's `price` says it."""

    input_per_1k: float
    output_per_1k: float

    def cost(self, tokens_input: int, tokens_output: int) -> float:
        return tokens_input / 1000 * self.input_per_1k + tokens_output / 1000 * self.output_per_1k


def _split(model: str) -> tuple[str, str]:
    provider, _, name = model.partition("/")
    return provider, name


def table_cost(model: str, tokens_input: int, tokens_output: int) -> float | None:
    """The table's price of one call's tokens (tiers included), or None when it lists no price."""
    provider, name = _split(model)
    if provider not in TABLE_PROVIDERS or not name:
        return None
    try:
        result = calc_price(
            Usage(input_tokens=tokens_input, output_tokens=tokens_output),
            model_ref=name,
            provider_id=TABLE_PROVIDERS[provider],
        )
    except LookupError:
        return None
    return float(result.total_price)


def is_priced(model: str, agent_price: Price | None) -> bool:
    """Whether the cost of `model`'s calls is known before calling it."""
    if agent_price is not None or model.startswith("builtin/"):
        return True
    return table_cost(model, 0, 0) is not None


def cost(
    model: str, agent_price: Price | None, tokens_input: int, tokens_output: int
) -> float | None:
    """USD for these tokens: the agent's price first, then the table; None when unknown."""
    if agent_price is not None:
        return agent_price.cost(tokens_input, tokens_output)
    if model.startswith("builtin/"):
        return 0.0
    return table_cost(model, tokens_input, tokens_output)


def _per_1k(value: Decimal | TieredPrices | None) -> float | None:
    """A per-million-token figure as per 1,000 tokens; tiered prices by their base (first) tier."""
    if value is None:
        return None
    base = value.base if isinstance(value, TieredPrices) else value
    return float(base) / 1000


@dataclass(frozen=True)
class CatalogueEntry:
    model: str
    provider: str
    price: Price | None
    context_window: int | None


def _offered(provider: str, info: ModelInfo) -> bool:
    return not info.deprecated and (provider != "google" or info.id.startswith(_GOOGLE_FAMILY))


def catalogue(now: datetime | None = None) -> list[CatalogueEntry]:
    """The chat models of our providers that the table lists (deprecated ones left out), each
    with its current token price, sorted by name."""
    now = now or datetime.now(tz=UTC)
    entries = []
    for table_provider in get_snapshot().providers:
        provider = next((p for p, t in TABLE_PROVIDERS.items() if t == table_provider.id), None)
        if provider is None:
            continue
        for info in table_provider.models:
            if not _offered(provider, info):
                continue
            prices = info.get_prices(now)
            per_in, per_out = _per_1k(prices.input_mtok), _per_1k(prices.output_mtok)
            if per_in is None or per_out is None:
                continue  # embeddings, speech: not a model an agent talks to
            entries.append(
                CatalogueEntry(
                    model=f"{provider}/{info.id}",
                    provider=provider,
                    price=Price(per_in, per_out),
                    context_window=info.context_window,
                )
            )
    return sorted(entries, key=lambda entry: entry.model)
