"""What a turn cost, in US dollars: the config's models.<name>.price, else the price in
pydantic's genai-prices table, else unknown (None, never 0)."""

from __future__ import annotations

import logging
import math
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chinwag.config import ModelPrice, ProviderSettings
    from chinwag.types import Usage

log = logging.getLogger(__name__)
# (model, base_url) -> genai-prices' (provider, model) for it, or None if it has no price.
# The table ships inside the package and never changes while a process runs.
_found: dict[tuple[str, str | None], tuple[Any, Any] | None] = {}
# (model, base_url) -> the table's price of a million tokens in and out now, and until when
# that holds; None for the two prices when they are tiered by the prompt's size (the table
# then prices each turn). A price may change with the date or the hour (off-peak rates), so
# it is asked again each minute.
_rates: dict[tuple[str, str | None], tuple[Decimal | None, Decimal | None, float]] = {}
RATES_FOR = 60.0
_MILLION = 10**6
MICRO = 10**6  # micro-dollars in a dollar: what money budgets count in


def turn_cost(
    model: str, usage: Usage, *, price: ModelPrice | None, provider: ProviderSettings
) -> float | None:
    """The cost of these tokens on this model and provider; None if no price is known."""
    if price is not None:
        return (usage.prompt_tokens * price.input + usage.completion_tokens * price.output) / 1e6
    if provider.type == "local":
        return 0.0  # the embedded model runs on this machine: no bill
    try:
        return _table_cost((model, provider.base_url), usage)
    except Exception as exc:  # the table could not be read (no files left, a broken
        # install): the turn stands, its cost is unknown
        log.warning("could not price a turn of %s: %s", model, exc)
        return None


def micro_dollars(cost: float) -> int:
    """A cost as a money budget is charged it: whole micro-dollars, rounded up, so that no
    turn is free by rounding; float noise far below a micro-dollar is dropped first."""
    return math.ceil(round(cost * MICRO, 6))


def money(cost: float | None, unpriced: int = 0) -> str:
    """A cost as people read it: "$0.000450", "unknown" (no price known), or the priced
    part and how many requests had no price ("$0.0012 + 3 unpriced")."""
    if cost is None:
        return "unknown"
    shown = f"${cost:.6f}" if cost < 0.01 else f"${cost:.4f}"
    return f"{shown} + {unpriced} unpriced" if unpriced else shown


def usd(dollars: float) -> str:
    """An amount as people read it: "$5.00", "$0.0035", "$1,200.50"."""
    shown = f"{dollars:,.6f}".rstrip("0")
    return "$" + shown + "0" * (2 - len(shown.partition(".")[2]))


def _table_cost(key: tuple[str, str | None], usage: Usage) -> float | None:
    entry = _lookup(key)
    if entry is None:
        return None
    rates = _rates.get(key)
    if rates is None or rates[2] < time.monotonic():
        rates = _rates[key] = _linear_rates(*entry)
    per_in, per_out, _ = rates
    if per_in is None or per_out is None:
        return _table_price(entry, usage.prompt_tokens, usage.completion_tokens)
    # genai-prices' own arithmetic (price x count / per unit), without its ~0.1 ms a call.
    return float(
        per_in * usage.prompt_tokens / _MILLION + per_out * usage.completion_tokens / _MILLION
    )


def _table_price(entry: tuple[Any, Any], tokens_in: int, tokens_out: int) -> float:
    """What genai-prices computes for these tokens, at today's price."""
    from genai_prices import Usage as Tokens

    where, info = entry
    tokens = Tokens(input_tokens=tokens_in, output_tokens=tokens_out)
    return float(info.calc_price(tokens, where).total_price)


def _linear_rates(where: Any, info: Any) -> tuple[Decimal | None, Decimal | None, float]:
    """The table's price of a million tokens in and of a million out, as it computes them,
    if its price is linear in the tokens (else None, None); and until when it holds."""
    from datetime import UTC, datetime

    from genai_prices import Usage as Tokens
    from genai_prices.types import TieredPrices

    prices = info.get_prices(datetime.now(UTC))
    if any(isinstance(value, TieredPrices) for value in vars(prices).values()):
        return None, None, time.monotonic() + RATES_FOR
    per_in = info.calc_price(Tokens(input_tokens=_MILLION, output_tokens=0), where).total_price
    per_out = info.calc_price(Tokens(input_tokens=0, output_tokens=_MILLION), where).total_price
    return per_in, per_out, time.monotonic() + RATES_FOR


def _lookup(key: tuple[str, str | None]) -> tuple[Any, Any] | None:
    """genai-prices' entry for the model at the provider whose API the URL is; a URL it
    does not know (a proxy, a gateway, a test server) falls back to the model's name."""
    if key in _found:
        return _found[key]
    from genai_prices.data_snapshot import get_snapshot  # 0.2 s: only once a turn is priced

    model, base_url = key
    table = get_snapshot()
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


__all__ = ["MICRO", "micro_dollars", "turn_cost", "usd"]
