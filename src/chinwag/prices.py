"""What a turn cost, in US dollars: the config's models.<name>.price, else the price in
pydantic's genai-prices table, else unknown (None, never 0)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chinwag.config import ModelPrice, ProviderSettings
    from chinwag.types import Usage

# (model, base_url) -> genai-prices' (provider, model) for it, or None if it has no price.
# The table ships inside the package and never changes while a process runs.
_found: dict[tuple[str, str | None], tuple[Any, Any] | None] = {}


def turn_cost(
    model: str, usage: Usage, *, price: ModelPrice | None, provider: ProviderSettings
) -> float | None:
    """The cost of these tokens on this model and provider; None if no price is known."""
    if price is not None:
        return (usage.prompt_tokens * price.input + usage.completion_tokens * price.output) / 1e6
    if provider.type == "local":
        return 0.0  # the embedded model runs on this machine: no bill
    entry = _lookup(model, provider.base_url)
    if entry is None:
        return None
    from genai_prices import Usage as Tokens

    where, info = entry
    tokens = Tokens(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens)
    return float(info.calc_price(tokens, where).total_price)


def _lookup(model: str, base_url: str | None) -> tuple[Any, Any] | None:
    """genai-prices' entry for the model at the provider whose API the URL is; a URL it
    does not know (a proxy, a gateway, a test server) falls back to the model's name."""
    key = (model, base_url)
    if key in _found:
        return _found[key]
    from genai_prices.data_snapshot import get_snapshot  # 0.2 s: only once a turn is priced

    table = get_snapshot()
    entry = None
    try:
        host = table.find_provider(None, None, base_url) if base_url else None
    except LookupError:
        host = None
    try:
        entry = table.find_provider_model(model, host, None, None)
    except LookupError:
        entry = None
    _found[key] = entry
    return entry


__all__ = ["turn_cost"]
