"""Conversation titles, written by a model after the first exchange, in the background."""

from __future__ import annotations

import contextlib
import logging
import re
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

    def default_provider(self) -> tuple[str, str]: ...


log = logging.getLogger("chinwag.titles")

TITLE_PROMPT = (
    "Write a title of at most six words for the conversation below. "
    "Reply with the title alone.\n\nUser: {question}\nAssistant: {answer}"
)
MAX_TITLE = 80


# What a model writes when it will not or cannot give a title: never a title.
_NOT_A_TITLE = re.compile(
    r"\b(sorry|apolog|i can(no|')t|i am unable|i'm unable|as an ai|i don'?t have|"
    r"i do not have|no title|title of at most|conversation below|reply with)\b",
    re.IGNORECASE,
)


def fallback_title(question: str) -> str:
    """The question's first words, cleaned: a title that needs no model."""
    line = " ".join(question.split())
    words = line.strip("\"'*#`> ").split()
    title = " ".join(words[:6]) + ("..." if len(words) > 6 else "")
    return title[:MAX_TITLE]


def clean_title(text: str) -> str:
    """The first line of a model's answer, without quotes, labels or a trailing period;
    empty when it is a refusal or an echo of the instruction."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    if line.lower().startswith("title:"):
        line = line[len("title:") :].strip()
    line = line.strip("\"'*#` ").rstrip(".")
    if _NOT_A_TITLE.search(line):
        return ""
    return line[:MAX_TITLE]


def model_writes(engine: Resources, bot: Bot) -> bool:
    """Whether a model writes this conversation's title: titles.mode model (or the shell's
    auto), and a real provider to write it, not the embedded model."""
    settings = engine.config.settings
    if settings.titles.provider is not None:
        return True
    name = bot.provider or engine.default_provider()[0]
    return engine.config.provider_settings(name).type != "local"


async def _writer(engine: Resources, bot: Bot, user_id: int) -> tuple[Provider, str]:
    """The provider and model that write titles: titles.provider's, or the title bot's
    (title_bot, else the conversation's bot)."""
    settings = engine.config.settings
    if settings.titles.provider is not None:
        provider = engine.provider(settings.titles.provider)
        return provider, provider.settings.model or engine.model_for(bot, provider)
    writer = await engine.bot(settings.title_bot, user_id) if settings.title_bot else bot
    provider = engine.provider(writer.provider)
    return provider, engine.model_for(writer, provider)


async def write_title(engine: Resources, bot: Bot, question: str, answer: str, user_id: int) -> str:
    """A title from the title bot (or `bot`); the question's first words if that fails."""
    if not model_writes(engine, bot):
        return fallback_title(question)
    try:
        provider, model = await _writer(engine, bot, user_id)
        request = ChatRequest(
            model=model,
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
    """Give a new conversation its title, unless it got one meanwhile; never raises.
    Of several server workers, one writes it (the others skip)."""
    try:
        store = await engine.store()
        async with store.only_once(f"title:{reply.conversation_id}") as mine:
            if not mine:
                return
            title = await write_title(engine, bot, question, reply.text, user_id)
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
