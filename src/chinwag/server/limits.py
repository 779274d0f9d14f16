"""A key's limits on model calls: requests and tokens per minute, tokens per day.

Before a call, its request is counted and its tokens reserved (the prompt's estimate plus
max_tokens) in the database, atomically; after it, the reservation is settled to what the
answer used. A spent limit is a 429 with Retry-After; a spent day also says
`x-should-retry: false`, since no retry can succeed before midnight (UTC).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import Request

from chinwag.counting import estimate_chars, estimate_prompt_tokens
from chinwag.errors import ChinwagError, InputError, LimitError
from chinwag.server.auth import Caller, tables
from chinwag.store.accounts import AccountStore, Refused, Window
from chinwag.types import Done, ErrorEvent, Event, Reply, TextDelta

_NAMES = {
    ("requests", "minute"): "requests per minute",
    ("tokens", "minute"): "tokens per minute",
    ("tokens", "day"): "tokens per day",
}


@dataclass(slots=True)
class Ticket:
    """One admitted model call; `settle` replaces its reservation by what it used."""

    tables: AccountStore | None = None
    key_id: str = ""
    windows: list[Window] = field(default_factory=list)
    reserved: int = 0
    prompt: int = 0  # the prompt's estimate, part of `reserved`
    reply: Reply | None = None
    sent: int = 0  # characters of answer streamed to the client so far

    def learn(self, event: Event) -> None:
        if type(event) is TextDelta:
            self.sent += len(event.text)
        elif type(event) is Done or type(event) is ErrorEvent:
            self.reply = event.reply

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
        given back with its tokens, so that refusals spend no limit."""
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
            used = 0
        elif reply is not None:
            used = reply.usage.total_tokens
        else:
            used = self.prompt + estimate_chars(self.sent)
        windows, self.windows = self.windows, []  # once
        with anyio.CancelScope(shield=True):
            await self.tables.settle(
                self.key_id, windows, used - self.reserved, requests=-1 if refund else 0
            )


async def admit(
    request: Request,
    who: Caller,
    messages: Iterable[Mapping[str, Any]],
    max_tokens: int | None,
    attached: int = 0,
) -> Ticket:
    """Count a model call against the caller's key, or raise LimitError (429); `attached`
    is the tokens its files add."""
    holder = who.holder
    if holder is None or (holder.rpm is None and holder.tpm is None
                          and holder.tokens_per_day is None):  # fmt: skip
        return Ticket()
    prompt = estimate_prompt_tokens(dict(m) for m in messages) + attached
    token_limits = [n for n in (holder.tpm, holder.tokens_per_day) if n is not None]
    if max_tokens is None:
        default = request.app.state.config.settings.server.reserve_tokens
        max_tokens = max(0, min([default, *(n - prompt for n in token_limits)]))
    reserve = prompt + max_tokens
    for limit in token_limits:
        if reserve > limit:
            raise InputError(
                f"This request may use {reserve:,} tokens (its messages and max_tokens), "
                f"more than the key's limit of {limit:,}: send less, or lower max_tokens."
            )
    store = await tables(request)
    clock = time.time()
    try:
        windows = await store.admit(holder, reserve, clock)
    except Refused as refused:
        name = _NAMES[(refused.limit, refused.span)]
        wait = max(1.0, refused.reopens - clock)
        if refused.span == "day":
            raise LimitError(
                f"The key's {name} are spent; they renew at midnight UTC.",
                retry_after=wait,
                should_retry=False,
            ) from None
        raise LimitError(
            f"The key's {name} are spent; try again in {wait:.0f} s.", retry_after=wait
        ) from None
    return Ticket(store, holder.key_id, windows, reserve, prompt)


__all__ = ["Ticket", "admit"]
