"""Conversation titles, written by a model after the first exchange, in the background."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Protocol

from chinwag.errors import ChinwagError
from chinwag.providers import ChatRequest, Provider, TextDelta
from chinwag.types import Bot, Conversation, GenerationParams, Reply

if TYPE_CHECKING:
    from chinwag.config import Config
    from chinwag.store import Store


class Resources(Protocol):
    """What writing a title needs from the engine: the config, bots, providers, the store."""

    config: Config

    async def store(self) -> Store: ...

    async def bot(self, bot: str | Bot | None, user_id: int) -> Bot: ...

    def provider(self, name: str | None = None) -> Provider: ...

    def model_for(self, bot: Bot, provider: Provider) -> str: ...


log = logging.getLogger("chinwag.titles")

TITLE_PROMPT = (
    "Write a title of at most six words for the conversation below. "
    "Reply with the title alone.\n\nUser: {question}\nAssistant: {answer}"
)
MAX_TITLE = 80


def fallback_title(question: str) -> str:
    """The question's first words: a title that needs no model."""
    words = question.split()
    title = " ".join(words[:6]) + ("..." if len(words) > 6 else "")
    return title[:MAX_TITLE]


def clean_title(text: str) -> str:
    """The first line of a model's answer, without quotes, labels or a trailing period."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    if line.lower().startswith("title:"):
        line = line[len("title:") :].strip()
    line = line.strip("\"'*#` ").rstrip(".")
    return line[:MAX_TITLE]


async def write_title(engine: Resources, bot: Bot, question: str, answer: str, user_id: int) -> str:
    """A title from the title bot (or `bot`); the question's first words if that fails."""
    try:
        title_key = engine.config.settings.title_bot
        writer = await engine.bot(title_key, user_id) if title_key else bot
        provider = engine.provider(writer.provider)
        request = ChatRequest(
            model=engine.model_for(writer, provider),
            messages=[
                {
                    "role": "user",
                    "content": TITLE_PROMPT.format(question=question[:2000], answer=answer[:2000]),
                }
            ],
            params=GenerationParams(max_tokens=24, temperature=0.2),
            stream=False,
        )
        parts: list[str] = []
        async with contextlib.aclosing(provider.stream(request)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
        title = clean_title("".join(parts))
    except ChinwagError as exc:  # a title is never worth failing for
        log.info("no title from the model (%s); using the question's first words", exc)
        title = ""
    return title or fallback_title(question)


async def title_in_background(
    engine: Resources, user_id: int, user: str, bot: Bot, question: str, reply: Reply
) -> None:
    """Give a new conversation its title, unless it got one meanwhile; never raises."""
    try:
        title = await write_title(engine, bot, question, reply.text, user_id)
        store = await engine.store()
        await store.rename_conversation(
            user_id, user, reply.conversation_id, title, only_if_untitled=True
        )
    except Exception:  # a background title must never surface as an error
        log.exception("titling conversation %s failed", reply.conversation_id)


async def title_now(
    engine: Resources, user_id: int, user: str, conversation_id: str
) -> Conversation:
    """Write and store a title for a conversation, from its first exchange on this branch."""
    store = await engine.store()
    thread = await store.thread(user_id, user, conversation_id)
    question = next((m.content for m in thread.messages if m.role == "user"), "")
    answer = next((m.content for m in thread.messages if m.role == "assistant"), "")
    if not question:
        from chinwag.errors import InputError

        raise InputError("This conversation has no question yet to make a title from.")
    bot = await engine.bot(thread.conversation.bot, user_id)
    title = await write_title(engine, bot, question, answer, user_id)
    return await store.rename_conversation(user_id, user, conversation_id, title)
