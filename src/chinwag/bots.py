"""Bots: the built-in ones, YAML files in `<config dir>/bots/`, and those users save.

Built-in and file bots are everyone's and read-only here; saved bots belong to one user
and cannot take a built-in or file bot's slug, so a slug always means one bot.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chinwag.errors import ConfigError, InputError, NotFoundError
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


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "bot"


def bot_from_mapping(data: dict[str, Any], *, default_slug: str | None = None) -> Bot:
    """A Bot from YAML-like data: slug from the name, uid from the slug, when missing."""
    data = dict(data)
    if "name" not in data and "slug" not in data and default_slug is None:
        raise InputError("A bot needs a name (or a slug).")
    data.setdefault("slug", default_slug or slugify(str(data.get("name", ""))))
    data.setdefault("name", data["slug"])
    data.setdefault("uid", str(uuid.uuid4()))
    try:
        return Bot.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise InputError(f"Invalid bot field {key} = {err.get('input')!r}: {err['msg']}.") from None


class BotFiles:
    """Bots from `<folder>/*.yaml`, re-read when the folder changes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._stamp: tuple[tuple[str, int], ...] | None = None
        self._bots: tuple[Bot, ...] = ()
        self.origin: dict[str, Path] = {}  # uid -> the file it came from

    def bots(self) -> tuple[Bot, ...]:
        files = sorted(self.folder.glob("*.yaml")) if self.folder.is_dir() else []
        stamp = tuple((str(f), f.stat().st_mtime_ns) for f in files)
        if stamp != self._stamp:
            self._bots, self.origin = self._read(files)
            self._stamp = stamp
        return self._bots

    @staticmethod
    def _read(files: Iterable[Path]) -> tuple[tuple[Bot, ...], dict[str, Path]]:
        import yaml

        found: list[Bot] = []
        origin: dict[str, Path] = {}
        for path in files:
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"Cannot read the bot file {path}: {exc}.") from None
            if not isinstance(data, dict):
                raise ConfigError(f"The bot file {path} must hold a mapping of bot fields.")
            # A file bot's uid follows its slug, so conversations survive edits.
            data.setdefault(
                "uid", str(uuid.uuid5(uuid.NAMESPACE_URL, f"chinwag:bot-file:{path.stem}"))
            )
            try:
                bot = bot_from_mapping(data, default_slug=path.stem)
            except InputError as exc:
                raise ConfigError(f"The bot file {path}: {exc}") from None
            found.append(bot)
            origin[bot.uid] = path
        return tuple(found), origin


def find(
    bots: Iterable[Bot],
    *,
    uid: str | None = None,
    slug: str | None = None,
    name: str | None = None,
) -> Bot | None:
    """The bot with this uid, slug or name, or None; a name shared by several is an error."""
    bots = list(bots)
    if uid is not None:
        return next((b for b in bots if b.uid == uid), None)
    if slug is not None:
        return next((b for b in bots if b.slug == slug), None)
    if name is not None:
        named = [b for b in bots if b.name == name]
        if len(named) > 1:
            slugs = ", ".join(b.slug for b in named)
            raise InputError(f"Several bots are named {name!r} (slugs: {slugs}): ask by slug.")
        return named[0] if named else None
    raise InputError("Ask for a bot by uid=, slug= or name=.")


def resolve(bots: Iterable[Bot], key: str) -> Bot | None:
    """The bot whose uid, slug or (unique) name is `key`."""
    bots = list(bots)
    return find(bots, uid=key) or find(bots, slug=key) or find(bots, name=key)


def not_found(key: str, bots: Iterable[Bot]) -> NotFoundError:
    slugs = ", ".join(sorted(b.slug for b in bots))
    return NotFoundError(f"No bot {key!r}. Known bots: {slugs}.")
