"""Bots: the built-in ones, YAML files in `<config dir>/bots/`, and those users save.

Built-in and file bots are everyone's and read-only here; saved bots belong to one user
and cannot take a built-in or file bot's slug, so a slug always means one bot.
"""

from __future__ import annotations

import builtins
import functools
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from chinwag import checks
from chinwag.config import read_yaml
from chinwag.errors import ConfigError, ConflictError, InputError, NotFoundError
from chinwag.types import Bot

if TYPE_CHECKING:
    from chinwag.config import Config
    from chinwag.store import Store


@functools.cache
def builtin_bots() -> tuple[Bot, ...]:
    """The bots every install has; made on first use, as building a model costs import
    time (pydantic builds Bot's validator, and loads its plugins, on the first Bot)."""
    default = Bot(
        # Stable across installs, so stored conversations keep pointing at it.
        uid=str(uuid.uuid5(uuid.NAMESPACE_URL, "https://chinwag.dev/bots/default")),
        slug="default",
        name="Default",
        description="A helpful assistant on the default provider and model.",
        # No prompt of its own, so the model's and the config's system prompts apply.
    )
    return (default,)


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
        raise InputError(f"Invalid bot field {checks.problem(exc, value=True)}") from None


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


def on_model(bot: Bot, provider: str | None, model: str | None) -> Bot:
    """The bot answering on another provider or model (a turn's `provider=`, `model=`): its
    uid, prompt and settings kept, so the turn is still its. A provider without a model
    means that provider's default model, not the bot's."""
    if provider is None and model is None:
        return bot
    changes: dict[str, Any] = {"model": model}
    if provider is not None:
        changes["provider"] = provider
    return bot.model_copy(update=changes)


def bot_yaml(bot: Bot) -> str:
    """A bot as YAML, as a file in the config dir's bots/ folder holds it."""
    import yaml

    data = bot.model_dump(mode="json", exclude_defaults=True)
    data = {"uid": bot.uid, "slug": bot.slug, "name": bot.name, **data}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def bot_key(bot: str | Bot) -> str:
    """How a bot is named to a server: a Bot by its uid, else the uid, slug or name given."""
    return bot.uid if isinstance(bot, Bot) else bot


def not_found(key: str, bots: Iterable[Bot]) -> NotFoundError:
    slugs = ", ".join(sorted(b.slug for b in bots))
    return NotFoundError(f"No bot {key!r}. Known bots: {slugs}.")


class Resolver(Protocol):
    """What the bots API needs of the engine (which itself uses this module to find bots)."""

    bot_files: BotFiles

    async def scope(self, user: Any, *, create: bool = False) -> tuple[Store, int, str]: ...

    async def bot(self, bot: str | Bot | None, user_id: int) -> Bot: ...

    async def visible_bots(self, user_id: int) -> builtins.list[Bot]: ...

    def shared_bots(self) -> tuple[Bot, ...]: ...


class Bots:
    """Bots: built-in, from YAML files in the config dir, and saved by the user
    (`client.bots`)."""

    def __init__(self, engine: Resolver) -> None:
        self._engine = engine

    async def list(self, *, user: str | int | None = None) -> builtins.list[Bot]:
        _, uid, _ = await self._engine.scope(user)
        return await self._engine.visible_bots(uid)

    async def get(
        self,
        *,
        uid: str | None = None,
        slug: str | None = None,
        name: str | None = None,
        user: str | int | None = None,
    ) -> Bot | None:
        """The bot with this uid, slug or name, or None. A name shared by several bots is
        an error that lists their slugs."""
        for value, what in ((uid, "uid"), (slug, "slug"), (name, "name")):
            if value is not None:
                checks.key(value, what)
        _, user_id, _ = await self._engine.scope(user)
        return find(await self._engine.visible_bots(user_id), uid=uid, slug=slug, name=name)

    async def find(self, key: str | None = None, *, user: str | int | None = None) -> Bot:
        """The bot whose uid, slug or name is `key` (the default bot if None); NotFoundError,
        listing the known slugs, if there is none."""
        _, uid, _ = await self._engine.scope(user)
        return await self._engine.bot(key, uid)

    async def create(
        self, bot: Bot | None = None, *, user: str | int | None = None, **fields: Any
    ) -> Bot:
        """Save a new bot for the user: a Bot, or its fields (name is enough). A slug means
        one bot: a saved bot cannot take a built-in or file bot's slug, nor any uid taken."""
        if bot is not None and not isinstance(bot, Bot):
            raise InputError(f"bots.create takes a Bot or its fields, not {bot!r:.60}.")
        store, uid, _ = await self._engine.scope(user, create=True)
        new = bot if bot is not None else bot_from_mapping(fields)
        if find(await self._engine.visible_bots(uid), slug=new.slug) is not None:
            raise ConflictError(
                f"A bot with slug {new.slug!r} exists already: choose another slug."
            )
        if any(b.uid == new.uid for b in self._engine.shared_bots()):
            raise ConflictError(
                f"The bot uid {new.uid!r} is taken: leave uid out to get a new one."
            )
        await store.save_bot(uid, new, new=True)
        return new

    async def update(self, key: str, *, user: str | int | None = None, **changes: Any) -> Bot:
        """Change fields of one of the user's saved bots (by uid, slug or name)."""
        store, uid, _ = await self._engine.scope(user)
        current = await self._saved(key, uid)
        new_slug = changes.get("slug", current.slug)
        visible = await self._engine.visible_bots(uid)
        if new_slug != current.slug and find(visible, slug=new_slug):
            raise ConflictError(f"A bot with slug {new_slug!r} exists already.")
        updated = bot_from_mapping({**current.model_dump(), **changes, "uid": current.uid})
        await store.save_bot(uid, updated)
        return updated

    async def delete(self, key: str, *, user: str | int | None = None) -> None:
        """Delete one of the user's saved bots."""
        store, uid, _ = await self._engine.scope(user)
        await store.delete_bot(uid, (await self._saved(key, uid)).uid)

    async def export(self, key: str, *, user: str | int | None = None) -> str:
        """The bot as YAML, ready for a file in the config dir's bots/ folder."""
        _, uid, _ = await self._engine.scope(user)
        return bot_yaml(await self._engine.bot(key, uid))

    async def _saved(self, key: str, user_id: int) -> Bot:
        bot = await self._engine.bot(key, user_id)
        if bot in self._engine.shared_bots():
            origin = self._engine.bot_files.origin.get(bot.uid)
            where = f"edit {origin}" if origin else "it is built in; create your own instead"
            raise InputError(f"Bot {bot.slug!r} cannot be changed here: {where}.")
        return bot
