"""A key's limits on model calls: requests and tokens per minute, tokens per day, and money
budgets per day and per month.

A call is counted once the engine has planned it (so its model, price and context are
known) and before anything is stored or sent: its request is counted, and its worst case
reserved in the database, atomically: the context's estimate plus max_tokens, in tokens
and, at the model's price, in micro-dollars. After the call, the reservation is settled
to what the answer used. A spent limit is a 429 with Retry-After; a spent day or month
also says `x-should-retry: false`, since no retry can succeed before it ends (UTC).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import Request

from chinwag.counting import estimate_chars
from chinwag.errors import ChinwagError, InputError, LimitError
from chinwag.prices import MICRO, micro_dollars, turn_cost, usd
from chinwag.server.auth import Caller, tables
from chinwag.store.accounts import AccountStore, KeyHolder, Refused, Window
from chinwag.types import Done, ErrorEvent, Event, Reply, TextDelta, Usage

if TYPE_CHECKING:
    from chinwag.plan import Plan

_NAMES = {
    ("requests", "minute"): "requests per minute",
    ("tokens", "minute"): "tokens per minute",
    ("tokens", "day"): "tokens per day",
}
_PER = {"day": "a day", "month": "a month"}
_ATTEMPTS = 3  # reservations sized from what was left, each lost to a concurrent request


@dataclass(slots=True)
class Ticket:
    """One model call of a key's: `admit` counts it once planned, `settle` replaces its
    reservation by what it used. A ticket without a holder counts nothing."""

    request: Request | None = None
    holder: KeyHolder | None = None
    tables: AccountStore | None = None
    windows: list[Window] = field(default_factory=list)
    plan: Plan | None = None
    reserved: int = 0  # tokens
    reserved_cost: int = 0  # micro-dollars; 0 unless the key has a money budget
    prompt: int = 0  # the context's estimate, part of `reserved`
    reply: Reply | None = None
    sent: int = 0  # characters of answer streamed to the client so far

    def learn(self, event: Event) -> None:
        if type(event) is TextDelta:
            self.sent += len(event.text)
        elif type(event) is Done or type(event) is ErrorEvent:
            self.reply = event.reply

    async def admit(self, plan: Plan) -> int | None:
        """Count the planned call against the key, or raise LimitError (429) or InputError
        (it can never fit, or cannot be priced). Returns the most tokens the answer may
        use when a money budget caps a call that named no max_tokens."""
        from chinwag.engine import context_tokens

        holder, request = self.holder, self.request
        assert holder is not None
        assert request is not None
        prompt = context_tokens(plan)
        tokens = [(n, span) for n, span in ((holder.tpm, "minute"),
                  (holder.tokens_per_day, "day")) if n is not None]  # fmt: skip
        budgets = [(n, span) for n, span in ((holder.cost_per_day, "day"),
                   (holder.cost_per_month, "month")) if n is not None]  # fmt: skip
        price = _Price(plan) if budgets else None
        given = plan.params.max_tokens
        # Sized from what the windows have left: read them first, and size again after a
        # race lost to another request of the key's (a spent request count is no race).
        sized = given is None and bool(tokens or budgets)
        store = await tables(request)
        for attempt in range(_ATTEMPTS):
            clock = time.time()
            max_tokens = given
            if max_tokens is None:  # as much as is left, up to server.reserve_tokens
                used = await store.used(holder, clock) if sized else {}
                room = [request.app.state.config.settings.server.reserve_tokens]
                room += [n - used.get(span, (0, 0))[0] - prompt for n, span in tokens]
                if price is not None:
                    left = [n - used.get(span, (0, 0))[1] for n, span in budgets]
                    room += [_tokens_for(price, prompt, n) for n in left]
                max_tokens = max(1 if budgets else 0, min(room))
            reserve = prompt + max_tokens
            for limit, _ in tokens:
                if reserve > limit:
                    raise InputError(
                        f"This request may use {reserve:,} tokens (its messages and max_tokens), "
                        f"more than the key's limit of {limit:,}: send less, or lower max_tokens."
                    )
            cost = 0 if price is None else micro_dollars(price(prompt, max_tokens))
            for budget, span in budgets:
                if cost > budget:
                    raise InputError(
                        f"This request may cost up to {usd(cost / MICRO)} (its messages and "
                        f"max_tokens at the model's price), more than the key's whole budget "
                        f"of {usd(budget / MICRO)} {_PER[span]}: send less, or lower max_tokens."
                    )
            try:
                self.windows = await store.admit(holder, reserve, cost, clock)
                break
            except Refused as refused:
                again = sized and refused.limit != "requests" and max_tokens >= 1
                if not again or attempt + 1 == _ATTEMPTS:
                    raise _spent(refused, holder, cost, clock) from None
        self.tables, self.plan = store, plan
        self.reserved, self.reserved_cost, self.prompt = reserve, cost, prompt
        return max_tokens if budgets and given is None else None

    async def run(self, call: Awaitable[Reply]) -> Reply:
        """Await a call that returns a Reply, and settle by it (or by its failure)."""
        try:
            reply = await call
        except BaseException as exc:
            await self.fail(exc)
            raise
        await self.settle(reply)
        return reply

    async def fail(self, exc: BaseException) -> None:
        """Settle for a call that raised. A chinwag error without a stored answer was refused
        before the model was asked (bad input, a missing conversation): the request is
        given back with its reservation, so that refusals spend no limit."""
        partial = getattr(exc, "partial", None)
        await self.settle(partial, refund=isinstance(exc, ChinwagError) and partial is None)

    async def settle(self, reply: Reply | None = None, *, refund: bool = False) -> None:
        """Count what the answer used; runs even when the request was cancelled, or the
        reservation would stay spent. An answer that ended with no reply (the client went
        away) counts its prompt and the text it was sent, so hanging up costs the same."""
        reply = reply or self.reply
        if self.tables is None or not self.windows:
            return
        if refund:
            used, charge = 0, 0
        elif reply is not None:
            used, charge = reply.usage.total_tokens, self._charge(reply.usage.cost)
        else:
            out = estimate_chars(self.sent)
            used, charge = self.prompt + out, self._charge(self._cost_of(self.prompt, out))
        windows, self.windows = self.windows, []  # once
        with anyio.CancelScope(shield=True):
            await self.tables.settle(
                self.holder.key_id if self.holder else "", windows, used - self.reserved,
                charge - self.reserved_cost, requests=-1 if refund else 0,
            )  # fmt: skip

    def _charge(self, cost: float | None) -> int:
        """What a money budget is charged (micro-dollars): the cost, or the reservation
        when the price could not be read at the end; nothing without a budget."""
        if not self.reserved_cost or cost is None:
            return self.reserved_cost
        return micro_dollars(cost)

    def _cost_of(self, tokens_in: int, tokens_out: int) -> float | None:
        if not self.reserved_cost or self.plan is None:
            return None
        try:
            return _Price(self.plan)(tokens_in, tokens_out)
        except InputError:  # the price could not be read at the end
            return None


class _Price:
    """The planned model's price of tokens in and out, in US dollars; a model with no
    known price cannot be charged to a money budget."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def __call__(self, tokens_in: int, tokens_out: int) -> float:
        plan = self.plan
        usage = Usage(prompt_tokens=tokens_in, completion_tokens=tokens_out)
        cost = turn_cost(plan.model, usage, price=plan.price, provider=plan.provider.settings)
        if cost is None:
            raise InputError(
                f"The model {plan.model!r} has no known price, so it cannot be charged to "
                "this key's money budget: the server's config can give it one, "
                f"models.{plan.model}.price: {{input: USD, output: USD}} (per million tokens)."
            )
        return cost


def _tokens_for(price: _Price, prompt: int, budget: int) -> int:
    """The most answer tokens whose worst case, with the prompt, fits in `budget`
    micro-dollars (one spared for rounding up)."""
    base = price(prompt, 0) * MICRO
    per_token = price(prompt, MICRO) - price(prompt, 0)  # a million tokens' dollars: µ$ each
    if per_token <= 0:
        return budget  # free answers (the embedded model): no bound from money
    return math.floor((budget - 1 - base) / per_token)


def _spent(refused: Refused, holder: KeyHolder, cost: int, clock: float) -> LimitError:
    """The 429 for a spent limit, naming it; a day's or a month's is final until it ends."""
    wait = max(1.0, refused.reopens - clock)
    final = refused.span != "minute"
    if refused.limit == "cost":
        budget = holder.cost_per_day if refused.span == "day" else holder.cost_per_month
        left = f"this request may cost up to {usd(cost / MICRO)}, more than is left"
        renews = "at midnight UTC"
        if refused.span == "month":
            renews = f"on {datetime.fromtimestamp(refused.reopens, UTC):%Y-%m-%d} (UTC)"
        message = (
            f"The key's budget of {usd((budget or 0) / MICRO)} {_PER[refused.span]} is spent "
            f"({left}); it renews {renews}."
        )
    elif final:
        name = _NAMES[(refused.limit, refused.span)]
        message = f"The key's {name} are spent; they renew at midnight UTC."
    else:
        name = _NAMES[(refused.limit, refused.span)]
        message = f"The key's {name} are spent; try again in {wait:.0f} s."
    return LimitError(message, retry_after=wait, should_retry=not final)


def ticket_for(request: Request, who: Caller, options: dict[str, Any]) -> Ticket:
    """A ticket for a model call of the caller's. A key with limits puts its `admit` in
    the turn's options: the engine calls it once the turn is planned."""
    holder = who.holder
    if holder is None or not holder.limited:
        return Ticket()
    found = Ticket(request, holder)
    options["admit"] = found.admit
    return found


__all__ = ["Ticket", "ticket_for"]
