"""The answer of a turn as it is written: its text so far, saved while it streams (so that a
crash keeps what was shown, marked partial), its tool rounds, and its final record."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio

from chinwag.background import Background, Job
from chinwag.counting import count_words, estimate_prompt_tokens, estimate_tokens, text_of
from chinwag.errors import NotFoundError, StoreError
from chinwag.prices import turn_cost
from chinwag.providers.base import ChatRequest
from chinwag.types import Reply, Role, Source, Status, ToolCall, Usage

if TYPE_CHECKING:
    from chinwag.plan import Plan
    from chinwag.store import Store

log = logging.getLogger("chinwag.answer")

# A conversation that moved elsewhere is never "at" this id: every later move is skipped.
NOWHERE = ""
# Seconds a turn may wait for its reader to take the next event before it lets its
# conversation go (a stream stopped but never closed must not block the next turn).
ABANDONED_AFTER = 60.0


def storable(text: str) -> str:
    """Text as every store keeps it: NUL, which PostgreSQL refuses, becomes U+FFFD."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


class Answer:
    """One turn's answer, from the stored question to the stored reply."""

    def __init__(
        self,
        store: Store,
        plan: Plan,
        *,
        conversation_id: str,
        question_id: str,
        head: str | None,
        save_every: float,
        lease: float,
    ) -> None:
        self.store = store
        self.plan = plan
        self.conversation_id = conversation_id
        self.leaf = question_id  # the parent of the next message
        # Where the conversation is while this turn holds it; every move is compare-and-set.
        self.head = NOWHERE if head is None else head
        self.branched = head is None
        self.parts: list[str] = []
        self.reported: Usage | None = None
        self.finish: str | None = None
        self.sources: list[Source] = []
        self.context: list[dict[str, Any]] = []
        self.extra: list[dict[str, Any]] = []  # this turn's tool calls and results, in order
        self.tool_calls: list[ToolCall] = []  # calls handed back to the caller (tool_schemas)
        self.trimmed = 0
        self._save_every = save_every
        self._lease = lease
        self._saving = plan.request.stream  # nobody sees a non-streamed answer arrive
        self._draft: str | None = None  # the stored, still streaming answer's id
        self._wake = anyio.Event()  # set while there is text not yet saved
        self._keeper: Job | None = None
        self.kept = True
        # The reader: whether the turn waits for it to take an event, and how many it took.
        self.paused = False
        self.pulled = 0
        self._background: Background | None = None

    @classmethod
    def unkept(cls, store: Store, plan: Plan) -> Answer:
        """An answer stored nowhere (the caller keeps the history); its usage still counts."""
        answer = cls(
            store, plan, conversation_id="", question_id="", head=None, save_every=1.0, lease=1.0
        )
        answer.branched = False
        answer.kept = False
        answer._saving = False
        return answer

    def until(self) -> datetime:
        """When the turn's hold on its conversation runs out unless renewed."""
        return datetime.now(UTC) + timedelta(seconds=self._lease)

    def _moved(self, message_id: str, moved: bool) -> None:
        if moved:
            self.head = message_id
        else:
            self.head, self.branched = NOWHERE, True

    # -- while it runs ---------------------------------------------------------------------

    def start(self, background: Background) -> None:
        """Keep the conversation held, and the answer saved as it streams, until recorded.
        Where nothing can run in the background, the answer is stored when it ends."""
        self._background = background
        first = min(self._save_every, self._lease / 3)  # a shorter answer costs no extra write
        self._keeper = background.spawn(self._keep, "keeping a turn's answer saved", after=first)

    def add(self, text: str) -> None:
        """More of the answer: the hot path, so it only wakes the keeper."""
        self.parts.append(text)
        if self._saving and not self._wake.is_set():
            self._wake.set()

    async def _keep(self) -> None:
        """Save the text every `save_every` seconds while it grows; renew the hold
        on the conversation when a third of the lease has passed without a save. A turn
        whose reader stopped reading (ABANDONED_AFTER) stops holding its conversation."""
        renew_every = self._lease / 3
        pulled, idle_since = self.pulled, time.monotonic()
        while True:
            with anyio.move_on_after(renew_every):
                await self._wake.wait()
            if not self.paused or self.pulled != pulled:
                pulled, idle_since = self.pulled, time.monotonic()
            elif time.monotonic() - idle_since > ABANDONED_AFTER and self.head != NOWHERE:
                log.warning("nobody reads this turn any more: its conversation is let go")
                self.head, self.branched = NOWHERE, True
            with anyio.CancelScope(shield=True):  # a write is never cut in half
                if self._wake.is_set():
                    self._wake = anyio.Event()
                    await self._save()
                elif self.head != NOWHERE:
                    await self._renew()
            await anyio.sleep(min(self._save_every, renew_every))

    async def _save(self) -> None:
        text = storable("".join(self.parts))
        try:
            if self._draft is None:
                draft, moved = await self.store.open_answer(
                    conversation_id=self.conversation_id, parent_id=self.leaf,
                    expected=self.head, until=self.until(), model=self.plan.model, content=text,
                )  # fmt: skip
                self._draft = draft
                self._moved(draft, moved)
            else:
                await self.store.save_draft(
                    self._draft, text, conversation_id=self.conversation_id, until=self.until()
                )
        except (StoreError, NotFoundError) as exc:  # the final record reports it
            log.warning("could not save the answer so far: %s", exc)

    async def _renew(self) -> None:
        try:
            await self.store.renew(self.conversation_id, head=self.head, until=self.until())
        except (StoreError, NotFoundError) as exc:
            log.warning("could not renew the turn's hold on its conversation: %s", exc)

    async def _stop_keeping(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            await keeper.stop()

    # -- tool rounds and the end -----------------------------------------------------------

    def request(self) -> ChatRequest:
        """What the provider is asked this round: the context, then this turn's tool
        calls and results so far."""
        plan = self.plan
        choice = plan.request.options.get("tool_choice")
        return ChatRequest(
            model=plan.model, messages=[*self.context, *self.extra], params=plan.params,
            stream=plan.request.stream, tools=plan.schemas,
            tool_choice=dict(choice) if isinstance(choice, Mapping) else choice,
        )  # fmt: skip

    async def calls(self, calls: Sequence[ToolCall]) -> None:
        """Store the model's tool calls, with what it said this round, before they run."""
        said = storable("".join(self.parts))
        self.extra.append(
            {
                "role": "assistant", "content": said or None,
                "tool_calls": [
                    {"id": c.id, "type": "function",
                     "function": {"name": c.name, "arguments": c.arguments}}
                    for c in calls
                ],
            }
        )  # fmt: skip
        meta = {"tool_calls": [c.model_dump() for c in calls]}
        await self._append([("assistant", said, meta)])
        self.parts = []

    async def result(self, call: ToolCall, content: str, failed: bool) -> None:
        """Store a tool's result as soon as it is known."""
        content = storable(content)
        self.extra.append({"role": "tool", "tool_call_id": call.id, "content": content})
        meta = {"tool_call_id": call.id, "name": call.name, "error": failed}
        await self._append([("tool", content, meta)])

    async def _append(self, items: list[tuple[Role, str, dict[str, Any]]]) -> None:
        with anyio.CancelScope(shield=True):
            await self._stop_keeping()
            leaf, moved = await self.store.add_messages(
                self.conversation_id, self.leaf, items, expected=self.head,
                until=self.until(), replace=self._draft,
            )  # fmt: skip
        self._draft = None
        self._wake = anyio.Event()
        self.leaf = leaf
        self._moved(leaf, moved)
        if self._background is not None:
            self.start(self._background)

    async def record(self, status: Status, error: str | None) -> Reply:
        """Store the answer as it ended; if the store fails, StoreError carries the Reply."""
        with anyio.CancelScope(shield=True):  # an interrupted answer is still stored
            await self._stop_keeping()
            text = storable("".join(self.parts))
            usage = final_usage(self.reported, self.context, text)
            plan = self.plan
            cost = turn_cost(plan.model, usage, price=plan.price, provider=plan.provider.settings)
            usage = usage.model_copy(update={"cost": cost})
            meta = {"sources": [s.model_dump() for s in self.sources]} if self.sources else None
            if not self.kept:
                await self.store.count_usage(
                    self.plan.user_id, self.plan.bot.uid, self.plan.model, usage, status
                )
                return self.reply(None, text, usage, status)
            try:
                message_id, moved = await self.store.finish_turn(
                    user_id=self.plan.user_id, conversation_id=self.conversation_id,
                    parent_id=self.leaf, expected=self.head, answer_id=self._draft,
                    bot_uid=self.plan.bot.uid, model=self.plan.model, content=text,
                    status=status, error=error, usage=usage, meta=meta,
                )  # fmt: skip
            except (StoreError, NotFoundError) as exc:
                exc.partial = self.reply(None, text, usage, status)
                if self.head != NOWHERE:  # let the next turn in at once, if it can
                    with contextlib.suppress(StoreError, NotFoundError):
                        await self.store.release(self.conversation_id, head=self.head)
                raise
        self._moved(message_id, moved)
        return self.reply(message_id, text, usage, status)

    def reply(self, message_id: str | None, text: str, usage: Usage, status: Status) -> Reply:
        plan = self.plan
        return Reply(
            text=text,
            conversation_id=self.conversation_id,
            message_id=message_id,
            bot=plan.bot.uid,
            provider=plan.provider.name,
            model=plan.model,
            usage=usage,
            status=status,
            finish_reason=self.finish,
            trimmed_messages=self.trimmed,
            sources=self.sources,
            branched=self.branched,
            tool_calls=self.tool_calls,
        )


def add_usage(total: Usage | None, more: Usage) -> Usage:
    if total is None:
        return more
    return Usage(
        prompt_tokens=total.prompt_tokens + more.prompt_tokens,
        completion_tokens=total.completion_tokens + more.completion_tokens,
        estimated=total.estimated or more.estimated,
    )


def final_usage(reported: Usage | None, context: list[dict[str, Any]], text: str) -> Usage:
    """The provider's token counts (estimated when it sent none), and words both ways."""
    prompt_words = sum(count_words(text_of(m.get("content"))) for m in context)
    completion_words = count_words(text)
    if reported is not None:
        return Usage(
            prompt_tokens=reported.prompt_tokens,
            completion_tokens=reported.completion_tokens,
            prompt_words=prompt_words,
            completion_words=completion_words,
            estimated=reported.estimated,
        )
    return Usage(
        prompt_tokens=estimate_prompt_tokens(context),
        completion_tokens=estimate_tokens(text),
        prompt_words=prompt_words,
        completion_words=completion_words,
        estimated=True,
    )


__all__ = ["NOWHERE", "Answer", "add_usage", "final_usage"]
