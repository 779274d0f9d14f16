"""Bots: the built-in ones, YAML files in `<config dir>/bots/`, and those users save.

Built-in and file bots are everyone's and read-only here; saved bots belong to one user
and cannot take a built-in or file bot's slug, so a slug always means one bot.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from chinwag.config import read_yaml
from chinwag.errors import ConfigError, InputError, NotFoundError
from chinwag.types import Bot

if TYPE_CHECKING:
    from chinwag.config import Config

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
    """Bots from `<folder>/*.yaml`, re-read when the folder changes.

    A file that cannot be read or holds an invalid bot is reported as broken, under its
    file's stem, and the other files' bots still work.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._stamp: tuple[tuple[str, int], ...] | None = None
        self._bots: tuple[Bot, ...] = ()
        self._broken: dict[str, str] = {}
        self.origin: dict[str, Path] = {}  # uid -> the file it came from

    @classmethod
    def of(cls, config: Config) -> BotFiles:
        """The bot files of this config: `<config dir>/bots/*.yaml`."""
        return cls(config.paths.config_dir / "bots")

    def bots(self) -> tuple[Bot, ...]:
        """The bots of the files that hold a valid bot."""
        self._refresh()
        return self._bots

    def broken(self) -> dict[str, str]:
        """Slug -> why its file cannot be used, one line naming the file."""
        self._refresh()
        return dict(self._broken)

    def refuse_broken(self, slug: str) -> None:
        """ConfigError naming the file and its problem, if `slug` is a broken file's bot."""
        why = self.broken().get(slug)
        if why is not None:
            raise ConfigError(f"Bot {slug!r} cannot be used: {why}")

    def _refresh(self) -> None:
        files = sorted(self.folder.glob("*.yaml")) if self.folder.is_dir() else []
        stamp = tuple((str(f), _mtime(f)) for f in files)
        if stamp != self._stamp:
            self._read(files)
            self._stamp = stamp

    def _read(self, files: Iterable[Path]) -> None:
        found: list[Bot] = []
        self.origin, self._broken = {}, {}
        for path in files:
            try:
                bot = self._bot(path)
            except ConfigError as exc:
                self._broken[path.stem] = str(exc)
                continue
            found.append(bot)
            self.origin[bot.uid] = path
        self._bots = tuple(found)

    @staticmethod
    def _bot(path: Path) -> Bot:
        data = read_yaml(path) or {}  # ConfigError naming the file, with the line
        if not isinstance(data, dict):
            problem = f"it must hold a mapping of bot fields, not {type(data).__name__}"
        else:
            # A file bot's uid follows its slug, so conversations survive edits.
            data.setdefault(
                "uid", str(uuid.uuid5(uuid.NAMESPACE_URL, f"chinwag:bot-file:{path.stem}"))
            )
            try:
                return bot_from_mapping(data, default_slug=path.stem)
            except InputError as exc:
                problem = str(exc).rstrip(".")
        raise ConfigError(f"The bot file {path} is invalid: {problem}. Fix or remove it.")


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # a dangling link: reading it reports the file as broken
        return -1


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
