"""Built-in bots and finding a bot by slug, uid or name."""

from __future__ import annotations

import uuid

from chinwag.errors import NotFoundError
from chinwag.types import Bot

# Stable across installs, so stored conversations keep pointing at it.
DEFAULT_BOT = Bot(
    uid=str(uuid.uuid5(uuid.NAMESPACE_URL, "https://chinwag.dev/bots/default")),
    slug="default",
    name="Default",
    description="A helpful assistant on the default provider and model.",
    # No prompt of its own, so the model's and the config's system prompts apply.
)

BUILTIN_BOTS = (DEFAULT_BOT,)


def find_bot(key: str, bots: tuple[Bot, ...] = BUILTIN_BOTS) -> Bot:
    """The bot whose slug, uid or name is `key`."""
    for bot in bots:
        if key in (bot.slug, bot.uid):
            return bot
    named = [bot for bot in bots if bot.name == key]
    if len(named) == 1:
        return named[0]
    slugs = ", ".join(bot.slug for bot in bots)
    raise NotFoundError(f"No bot {key!r}. Known bots: {slugs}.")
