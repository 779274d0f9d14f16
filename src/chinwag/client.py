"""AsyncClient, the engine's public face, and Client, its sync facade.

Client runs AsyncClient's coroutines on one background event loop (an anyio blocking
portal), so every behaviour has a single implementation.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Unpack, overload

import anyio
from pydantic import ValidationError

from chinwag import bots as bot_book, checks
from chinwag.config import Config
from chinwag.engine import Engine
from chinwag.errors import ChinwagError, ConflictError, InputError
from chinwag.plan import TurnOptions
from chinwag.streams import AsyncStream, Stream
from chinwag.types import (
    USAGE_COUNTERS,
    Bot,
    Conversation,
    Event,
    Health,
    Message,
    Reply,
    StatisticItem,
    Statistics,
    StatisticTotal,
)

if TYPE_CHECKING:
    from chinwag.store import Store
    from chinwag.templates import Rendered, Template
    from chinwag.workflows import Workflow, WorkflowResult

T = TypeVar("T")


def _config(config: Config | Mapping[str, Any] | None, profile: str | None) -> Config:
    if isinstance(config, Config):
        return config
    if config is not None and not isinstance(config, Mapping):
        raise InputError(
            f"config must be a chinwag.Config or a mapping of dotted keys to values, "
            f"not {type(config).__name__}: {config!r:.60}."
        )
    if profile is not None:
        checks.key(profile, "profile")
    return Config(config, profile=profile)


class _Scoped:
    """Shared by the sub-APIs: every call acts for one user (the default one if none)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def _user(
        self, user: str | int | None, *, create: bool = False
    ) -> tuple[Store, int, str]:
        """The store and the user; only writes store a new user (`create`)."""
        uid, name = await self._engine.user_id(user, create=create)
        return await self._engine.store(), uid, name


class AsyncConversations(_Scoped):
    """The user's stored conversations."""

    async def create(
        self,
        *,
        bot: str | Bot | None = None,
        system: str | None = None,
        title: str | None = None,
        user: str | int | None = None,
    ) -> Conversation:
        """An empty conversation with a bot, and a system prompt of its own if given."""
        checks.optional_text(system, "system")
        checks.optional_text(title, "title")
        store, uid, name = await self._user(user, create=True)
        chosen = await self._engine.bot(bot, uid)
        return await store.create_conversation(
            uid, name, bot_uid=chosen.uid, system_prompt=system, title=title
        )

    async def list(
        self, *, limit: int = 50, offset: int = 0, user: str | int | None = None
    ) -> builtins.list[Conversation]:
        """Conversations, newest activity first: id, title, bot and timestamps."""
        limit, offset = checks.count(limit, "limit"), checks.count(offset, "offset")
        store, uid, name = await self._user(user)
        return await store.list_conversations(uid, name, limit=limit, offset=offset)

    async def get(self, conversation_id: str, *, user: str | int | None = None) -> Conversation:
        checks.identifier(conversation_id, "conversation_id")
        store, uid, name = await self._user(user)
        return await store.conversation(uid, name, conversation_id)

    async def history(
        self, conversation_id: str, *, user: str | int | None = None
    ) -> builtins.list[Message]:
        """The messages of the conversation's current branch, oldest first."""
        checks.identifier(conversation_id, "conversation_id")
        store, uid, name = await self._user(user)
        return (await store.thread(uid, name, conversation_id)).messages

    async def delete(self, conversation_id: str, *, user: str | int | None = None) -> None:
        """Delete the conversation and its messages."""
        checks.identifier(conversation_id, "conversation_id")
        store, uid, _ = await self._user(user)
        await store.delete_conversation(uid, conversation_id)

    async def rename(
        self, conversation_id: str, title: str, *, user: str | int | None = None
    ) -> Conversation:
        checks.identifier(conversation_id, "conversation_id")
        checks.text(title, "title")
        store, uid, name = await self._user(user)
        return await store.rename_conversation(uid, name, conversation_id, title)

    async def retry(self, conversation_id: str, **options: Unpack[TurnOptions]) -> Reply:
        """Answer the conversation's last question again; the old answer stays on its branch."""
        turn = self._engine.turn(retry=True, stream=False, conversation=conversation_id, **options)
        return await AsyncClient._complete(turn)

    async def edit(self, message_id: str, text: str, **options: Unpack[TurnOptions]) -> Reply:
        """Ask `text` instead of an earlier question: a new branch from there, answered."""
        turn = self._engine.turn(text, edit=message_id, stream=False, **options)
        return await AsyncClient._complete(turn)

    async def export(
        self, conversation_id: str, *, format: str = "json", user: str | int | None = None
    ) -> str:
        """The conversation as JSON (every branch; import_json reads it back exactly) or as
        Markdown (the current branch, for people)."""
        checks.identifier(conversation_id, "conversation_id")
        store, uid, name = await self._user(user)
        if format == "json":
            import json

            data = await store.export_conversation(uid, name, conversation_id)
            return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        if format in ("md", "markdown"):
            thread = await store.thread(uid, name, conversation_id)
            lines = [f"# {thread.conversation.title or 'Untitled conversation'}", ""]
            for m in thread.messages:
                who = "You" if m.role == "user" else f"Assistant ({m.model or 'unknown model'})"
                note = "" if m.status == "complete" else f" *[{m.status}]*"
                lines += [f"**{who}**{note}:", "", m.content, ""]
            return "\n".join(lines)
        raise InputError(f"Unknown export format {format!r}: use json or markdown.")

    async def import_json(self, text: str, *, user: str | int | None = None) -> Conversation:
        """Store a conversation exported as JSON, exactly as it was."""
        import json

        try:
            data = json.loads(checks.text(text, "The export"))
            if not isinstance(data, dict) or "conversation" not in data or "messages" not in data:
                raise ValueError("expected an object with 'conversation' and 'messages'")
            if not isinstance(data["conversation"], dict):
                raise ValueError("'conversation' must be an object")
            messages = data["messages"]
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                raise ValueError("'messages' must be a list of objects")
            leaf = data.get("current_message_id")
            if leaf is not None and not isinstance(leaf, str):
                raise ValueError("'current_message_id' must be a message id or null")
            checks.storable(data)
        except RecursionError:
            raise InputError(
                "Not a chinwag conversation export: it is nested too deeply."
            ) from None
        except ValueError as exc:
            raise InputError(f"Not a chinwag conversation export: {exc}.") from None
        store, uid, name = await self._user(user, create=True)
        try:
            return await store.import_conversation(uid, name, data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise InputError(f"Not a chinwag conversation export: {where}: {err['msg']}.") from None

    async def generate_title(
        self, conversation_id: str, *, user: str | int | None = None
    ) -> Conversation:
        """Have the bot's model (or title_bot) title the conversation now."""
        from chinwag.titles import title_now

        checks.identifier(conversation_id, "conversation_id")
        _, uid, name = await self._user(user)
        return await title_now(self._engine, uid, name, conversation_id)


class AsyncBots(_Scoped):
    """Bots: built-in, from YAML files in the config dir, and saved by the user."""

    async def list(self, *, user: str | int | None = None) -> builtins.list[Bot]:
        _, uid, _ = await self._user(user)
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
        _, user_id, _ = await self._user(user)
        return bot_book.find(
            await self._engine.visible_bots(user_id), uid=uid, slug=slug, name=name
        )

    async def find(self, key: str | None = None, *, user: str | int | None = None) -> Bot:
        """The bot whose uid, slug or name is `key` (the default bot if None); NotFoundError,
        listing the known slugs, if there is none."""
        _, uid, _ = await self._user(user)
        return await self._engine.bot(key, uid)

    async def create(
        self, bot: Bot | None = None, *, user: str | int | None = None, **fields: Any
    ) -> Bot:
        """Save a new bot for the user: a Bot, or its fields (name is enough)."""
        if bot is not None and not isinstance(bot, Bot):
            raise InputError(f"bots.create takes a Bot or its fields, not {bot!r:.60}.")
        store, uid, _ = await self._user(user, create=True)
        new = bot if bot is not None else bot_book.bot_from_mapping(fields)
        taken = bot_book.find(await self._engine.visible_bots(uid), slug=new.slug)
        if taken is not None:
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
        store, uid, _ = await self._user(user)
        current = await self._saved(key, uid)
        new_slug = changes.get("slug", current.slug)
        visible = await self._engine.visible_bots(uid)
        if new_slug != current.slug and bot_book.find(visible, slug=new_slug):
            raise ConflictError(f"A bot with slug {new_slug!r} exists already.")
        data = {**current.model_dump(), **changes, "uid": current.uid}
        updated = bot_book.bot_from_mapping(data)
        await store.save_bot(uid, updated)
        return updated

    async def delete(self, key: str, *, user: str | int | None = None) -> None:
        """Delete one of the user's saved bots."""
        store, uid, _ = await self._user(user)
        await store.delete_bot(uid, (await self._saved(key, uid)).uid)

    async def export(self, key: str, *, user: str | int | None = None) -> str:
        """The bot as YAML, ready for a file in the config dir's bots/ folder."""
        import yaml

        _, uid, _ = await self._user(user)
        bot = await self._engine.bot(key, uid)
        data = bot.model_dump(mode="json", exclude_defaults=True)
        data = {"uid": bot.uid, "slug": bot.slug, "name": bot.name, **data}
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    async def _saved(self, key: str, user_id: int) -> Bot:
        bot = await self._engine.bot(key, user_id)
        if bot in self._engine.shared_bots():
            origin = self._engine.bot_files.origin.get(bot.uid)
            where = f"edit {origin}" if origin else "it is built in; create your own instead"
            raise InputError(f"Bot {bot.slug!r} cannot be changed here: {where}.")
        return bot


class AsyncTemplates(_Scoped):
    """Prompt templates: built-in, and Markdown files in `<config dir>/templates/`."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        from chinwag.templates import TemplateLibrary

        self.library = TemplateLibrary(engine.config.paths.config_dir / "templates", engine.config)

    async def list(self) -> builtins.list[Template]:
        return self.library.all()

    async def get(self, name: str) -> Template:
        return self.library.get(name)

    async def save(self, name: str, text: str) -> Template:
        """Check a template's text (front matter and Jinja2) and store it as NAME.md."""
        return self.library.save(name, text)

    async def render(self, name: str, /, **variables: Any) -> Rendered:
        """Fill a template in, in the sandbox; missing variables are named."""
        return self.library.render(name, variables)

    async def run(
        self,
        name: str,
        variables: Mapping[str, Any] | None = None,
        /,
        **options: Unpack[TurnOptions],
    ) -> Reply:
        """Send a filled-in template as a turn, with its bot, system prompt and parameters."""
        if variables is not None and not isinstance(variables, Mapping):
            raise InputError(
                f"A template's variables are a mapping of names to values, not {variables!r:.60}."
            )
        rendered = self.library.render(name, dict(variables or {}))
        turn: dict[str, Any] = rendered.parameters.model_dump(exclude_none=True)
        if rendered.bot is not None:
            turn["bot"] = rendered.bot
        if rendered.system is not None:
            turn["system"] = rendered.system
        turn.update({k: v for k, v in options.items() if v is not None})
        reply = await AsyncClient._complete(
            self._engine.turn(rendered.prompt, stream=False, **turn)
        )
        if rendered.title and options.get("conversation") is None:
            store, uid, user = await self._user(options.get("user"), create=True)
            await store.rename_conversation(uid, user, reply.conversation_id, rendered.title)
        return reply


class AsyncWorkflows(_Scoped):
    """Workflows: YAML lists of steps in `<config dir>/workflows/`, run by chinwag."""

    def __init__(self, engine: Engine, templates: AsyncTemplates) -> None:
        super().__init__(engine)
        from chinwag.workflows import WorkflowLibrary

        self.library = WorkflowLibrary(engine.config.paths.config_dir / "workflows")
        self._templates = templates

    async def list(self) -> builtins.list[str]:
        return self.library.names()

    async def get(self, name: str) -> Workflow:
        return self.library.get(name)

    async def run(
        self,
        name: str,
        /,
        *,
        _user: str | int | None = None,
        _progress: Callable[[str, str], None] | None = None,
        **args: Any,
    ) -> WorkflowResult:
        """Run a workflow with its arguments; each step's turn is stored as a conversation
        titled '<workflow> / <step>'."""
        from chinwag.workflows import run

        workflow = self.library.get(name)
        store, uid, user = await self._user(_user, create=True)

        async def ask(step: str, prompt: str, options: dict[str, Any]) -> Reply:
            turn = self._engine.turn(prompt, stream=False, user=_user, **options)
            reply = await AsyncClient._complete(turn)
            title = f"{workflow.name} / {step}"
            await store.rename_conversation(uid, user, reply.conversation_id, title)
            return reply

        return await run(
            workflow,
            args,
            ask,
            self._templates.library.render,
            _progress,
            self._engine.config.settings,
        )


class AsyncStats(_Scoped):
    """Usage in tokens and words, per user and day, from the daily rollup."""

    MAX_DAYS = 366  # items one usage report lists; total() takes any span

    async def usage(
        self,
        *,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
        user: str | int | None = None,
        bot: str | Bot | None = None,
    ) -> Statistics:
        """One item per day from start_date to end_date (default: today), and the total."""
        return await self._report(start_date, end_date, user, bot, items=True)

    async def _report(
        self,
        start_date: date | str | None,
        end_date: date | str | None,
        user: str | int | None,
        bot: str | Bot | None,
        *,
        items: bool,
    ) -> Statistics:
        start = _day(start_date)
        end = _day(end_date) if end_date is not None else max(start, _day(None))
        if end < start:
            raise InputError(f"end_date {end} is before start_date {start}.")
        days = (end - start).days + 1
        if items and days > self.MAX_DAYS:
            raise InputError(
                f"stats.usage lists at most {self.MAX_DAYS} days, one item each, and "
                f"{start} to {end} is {days}: use stats.total for a longer span."
            )
        store, uid, _ = await self._user(user)
        bot_uid = (await self._engine.bot(bot, uid)).uid if bot is not None else None
        # Only days with use have rows, so the cost follows the use, never the span.
        rows = {
            row[0]: row[1:] for row in await store.usage_by_day(uid, start, end, bot_uid=bot_uid)
        }
        sums = {f: sum(int(row[i]) for row in rows.values()) for i, f in enumerate(USAGE_COUNTERS)}
        total = StatisticTotal(start_date=start, end_date=end, **sums)
        listed = []
        for day in (start + timedelta(days=n) for n in range(days if items else 0)):
            counts = dict(zip(USAGE_COUNTERS, rows.get(day, (0,) * 6), strict=True))
            listed.append(StatisticItem(date=day, **counts))
        return Statistics(total=total, items=listed)

    async def day(
        self, date: date | str | None = None, *, user: str | int | None = None
    ) -> StatisticItem:
        """One day's usage (default: today)."""
        stats = await self.usage(start_date=date, end_date=date, user=user)
        return stats.items[0]

    async def total(
        self,
        *,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
        user: str | int | None = None,
    ) -> StatisticTotal:
        """Usage added up from start_date to end_date (default: today), over any span."""
        return (await self._report(start_date, end_date, user, None, items=False)).total


def _day(value: date | str | None) -> date:
    if value is None:
        return datetime.now(UTC).date()
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InputError(f"Not a date: {value!r}. Use a date or 'YYYY-MM-DD'.") from None


class AsyncClient:
    """Talk to language models, asynchronously; every turn is stored."""

    def __init__(
        self, config: Config | Mapping[str, Any] | None = None, *, profile: str | None = None
    ) -> None:
        self.config = _config(config, profile)
        self._engine = Engine(self.config)
        self.conversations = AsyncConversations(self._engine)
        self.bots = AsyncBots(self._engine)
        self.stats = AsyncStats(self._engine)
        self.templates = AsyncTemplates(self._engine)
        self.workflows = AsyncWorkflows(self._engine, self.templates)

    async def ask(self, prompt: str, **options: Unpack[TurnOptions]) -> Reply:
        """Send one prompt and return the whole reply."""
        return await self._complete(self._engine.turn(prompt, stream=False, **options))

    def stream(self, prompt: str, **options: Unpack[TurnOptions]) -> AsyncStream:
        """Send one prompt; iterate the returned stream for text as it arrives."""
        return AsyncStream(self._engine.turn(prompt, **options))

    @overload
    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: Literal[False] = False,
        **options: Unpack[TurnOptions],
    ) -> Reply: ...

    @overload
    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: Literal[True],
        **options: Unpack[TurnOptions],
    ) -> AsyncStream: ...

    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: bool = False,
        **options: Unpack[TurnOptions],
    ) -> Reply | AsyncStream:
        """Answer a message list (system prompts, earlier turns, then the user's prompt)."""
        events = self._engine.turn(messages=messages, stream=stream, **options)
        return AsyncStream(events) if stream else await self._complete(events)

    async def health(self) -> Health:
        """The default provider and why, and whether the store and each provider answer."""
        return await self._engine.health()

    async def models(self, provider: str | None = None) -> list[str]:
        """The models a provider serves (the default provider if None)."""
        return await self._engine.provider(provider).models()

    def set_system_prompt(self, model: str, prompt: str | None) -> None:
        """The system prompt for every conversation on `model` (hugchat's setSystemPrompt),
        below per-call, per-conversation and per-bot prompts; None removes it."""
        checks.key(model, "model")
        checks.optional_text(prompt, "prompt")
        self.config.set(self.config.key("models", model, "system_prompt"), prompt)

    def set_system_prompts(self, prompts: Mapping[str, str | None]) -> None:
        """set_system_prompt for several models at once."""
        if not isinstance(prompts, Mapping):
            raise InputError(f"prompts must map model names to prompts, not {prompts!r:.60}.")
        for model, prompt in prompts.items():
            self.set_system_prompt(model, prompt)

    async def settle(self) -> None:
        """Wait for background work (conversation titles) to finish."""
        await self._engine.settle()

    @staticmethod
    async def _complete(events: AsyncIterator[Event]) -> Reply:
        stream = AsyncStream(events)
        async for _ in stream.events():
            pass
        return stream.reply

    async def aclose(self) -> None:
        """Wait up to 30 s for background titles, then close connections."""
        await self._engine.aclose()

    @contextlib.asynccontextmanager
    async def _background_work(self) -> AsyncIterator[None]:
        """A task group for background work (titles, saving streamed answers) while open."""
        async with anyio.create_task_group() as group:
            self._engine.background.attach(group)
            try:
                yield
            finally:
                self._engine.background.attach(None)
                group.cancel_scope.cancel()

    async def __aenter__(self) -> AsyncClient:
        self._open = self._background_work()
        await self._open.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.aclose()
        finally:
            # The body's exception is the caller's, not the background group's to wrap.
            await self._open.__aexit__(None, None, None)


class _Sync:
    """Shared by the sync sub-APIs: run the async one's calls on the client's loop."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _run(self, call: Callable[[], Awaitable[T]], wait: bool) -> T | Future[T]:
        return self._client._call(call) if wait else self._client._submit(call)


class Conversations(_Sync):
    """The user's stored conversations (sync). `wait=False` returns a Future, as in hugchat."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._async = client._async.conversations

    def create(
        self,
        *,
        bot: str | Bot | None = None,
        system: str | None = None,
        title: str | None = None,
        user: str | int | None = None,
    ) -> Conversation:
        """An empty conversation with a bot, and a system prompt of its own if given."""
        call = self._async.create(bot=bot, system=system, title=title, user=user)
        return self._client._call(lambda: call)

    def list(
        self, *, limit: int = 50, offset: int = 0, user: str | int | None = None
    ) -> builtins.list[Conversation]:
        """Conversations, newest activity first: id, title, bot and timestamps."""
        return self._client._call(lambda: self._async.list(limit=limit, offset=offset, user=user))

    def get(self, conversation_id: str, *, user: str | int | None = None) -> Conversation:
        return self._client._call(lambda: self._async.get(conversation_id, user=user))

    @overload
    def history(
        self, conversation_id: str, *, user: str | int | None = ..., wait: Literal[True] = ...
    ) -> builtins.list[Message]: ...

    @overload
    def history(
        self, conversation_id: str, *, user: str | int | None = ..., wait: Literal[False]
    ) -> Future[builtins.list[Message]]: ...

    def history(
        self, conversation_id: str, *, user: str | int | None = None, wait: bool = True
    ) -> builtins.list[Message] | Future[builtins.list[Message]]:
        """The messages of the conversation's current branch, oldest first."""
        return self._run(lambda: self._async.history(conversation_id, user=user), wait)

    @overload
    def delete(
        self, conversation_id: str, *, user: str | int | None = ..., wait: Literal[True] = ...
    ) -> None: ...

    @overload
    def delete(
        self, conversation_id: str, *, user: str | int | None = ..., wait: Literal[False]
    ) -> Future[None]: ...

    def delete(
        self, conversation_id: str, *, user: str | int | None = None, wait: bool = True
    ) -> Future[None] | None:
        """Delete the conversation and its messages."""
        return self._run(lambda: self._async.delete(conversation_id, user=user), wait)

    def rename(
        self, conversation_id: str, title: str, *, user: str | int | None = None
    ) -> Conversation:
        return self._client._call(lambda: self._async.rename(conversation_id, title, user=user))

    def retry(self, conversation_id: str, **options: Unpack[TurnOptions]) -> Reply:
        """Answer the conversation's last question again; the old answer stays on its branch."""
        return self._client._call(lambda: self._async.retry(conversation_id, **options))

    def edit(self, message_id: str, text: str, **options: Unpack[TurnOptions]) -> Reply:
        """Ask `text` instead of an earlier question: a new branch from there, answered."""
        return self._client._call(lambda: self._async.edit(message_id, text, **options))

    @overload
    def generate_title(
        self, conversation_id: str, *, user: str | int | None = ..., wait: Literal[True] = ...
    ) -> Conversation: ...

    @overload
    def generate_title(
        self, conversation_id: str, *, user: str | int | None = ..., wait: Literal[False]
    ) -> Future[Conversation]: ...

    def generate_title(
        self, conversation_id: str, *, user: str | int | None = None, wait: bool = True
    ) -> Conversation | Future[Conversation]:
        """Have the bot's model (or title_bot) title the conversation now."""
        return self._run(lambda: self._async.generate_title(conversation_id, user=user), wait)

    def export(
        self, conversation_id: str, *, format: str = "json", user: str | int | None = None
    ) -> str:
        """The conversation as JSON (every branch) or Markdown (the current branch)."""
        return self._client._call(
            lambda: self._async.export(conversation_id, format=format, user=user)
        )

    def import_json(self, text: str, *, user: str | int | None = None) -> Conversation:
        """Store a conversation exported as JSON, exactly as it was."""
        return self._client._call(lambda: self._async.import_json(text, user=user))


class Bots(_Sync):
    """Bots (sync): built-in, from YAML files in the config dir, and saved by the user."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._async = client._async.bots

    def list(self, *, user: str | int | None = None) -> builtins.list[Bot]:
        return self._client._call(lambda: self._async.list(user=user))

    def get(
        self,
        *,
        uid: str | None = None,
        slug: str | None = None,
        name: str | None = None,
        user: str | int | None = None,
    ) -> Bot | None:
        """The bot with this uid, slug or name, or None."""
        return self._client._call(lambda: self._async.get(uid=uid, slug=slug, name=name, user=user))

    def find(self, key: str | None = None, *, user: str | int | None = None) -> Bot:
        """The bot whose uid, slug or name is `key` (the default bot if None)."""
        return self._client._call(lambda: self._async.find(key, user=user))

    def create(
        self, bot: Bot | None = None, *, user: str | int | None = None, **fields: Any
    ) -> Bot:
        """Save a new bot for the user: a Bot, or its fields (name is enough)."""
        return self._client._call(lambda: self._async.create(bot, user=user, **fields))

    def update(self, key: str, *, user: str | int | None = None, **changes: Any) -> Bot:
        return self._client._call(lambda: self._async.update(key, user=user, **changes))

    def delete(self, key: str, *, user: str | int | None = None) -> None:
        return self._client._call(lambda: self._async.delete(key, user=user))

    def export(self, key: str, *, user: str | int | None = None) -> str:
        """The bot as YAML, ready for a file in the config dir's bots/ folder."""
        return self._client._call(lambda: self._async.export(key, user=user))


class Templates(_Sync):
    """Prompt templates (sync): built-in, and Markdown files in `<config dir>/templates/`."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._async = client._async.templates
        self.library = self._async.library  # where templates are read and written

    def list(self) -> builtins.list[Template]:
        return self._client._call(self._async.list)

    def get(self, name: str) -> Template:
        return self._client._call(lambda: self._async.get(name))

    def save(self, name: str, text: str) -> Template:
        return self._client._call(lambda: self._async.save(name, text))

    def render(self, name: str, /, **variables: Any) -> Rendered:
        return self._client._call(lambda: self._async.render(name, **variables))

    def run(
        self,
        name: str,
        variables: Mapping[str, Any] | None = None,
        /,
        **options: Unpack[TurnOptions],
    ) -> Reply:
        """Send a filled-in template as a turn, with its bot, system prompt and parameters."""
        return self._client._call(lambda: self._async.run(name, variables, **options))


class Workflows(_Sync):
    """Workflows (sync): YAML lists of steps in `<config dir>/workflows/`."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._async = client._async.workflows

    def list(self) -> builtins.list[str]:
        return self._client._call(self._async.list)

    def get(self, name: str) -> Workflow:
        return self._client._call(lambda: self._async.get(name))

    def run(
        self,
        name: str,
        /,
        *,
        _user: str | int | None = None,
        _progress: Callable[[str, str], None] | None = None,
        **args: Any,
    ) -> WorkflowResult:
        """Run a workflow with its arguments; each step's turn is stored."""
        return self._client._call(
            lambda: self._async.run(name, _user=_user, _progress=_progress, **args)
        )


class Stats(_Sync):
    """Usage in tokens and words, per user and day (sync)."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._async = client._async.stats

    def usage(
        self,
        *,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
        user: str | int | None = None,
        bot: str | Bot | None = None,
    ) -> Statistics:
        """One item per day from start_date to end_date (default: today), and the total."""
        call = self._async.usage(start_date=start_date, end_date=end_date, user=user, bot=bot)
        return self._client._call(lambda: call)

    def day(
        self, date: date | str | None = None, *, user: str | int | None = None
    ) -> StatisticItem:
        return self._client._call(lambda: self._async.day(date, user=user))

    def total(
        self,
        *,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
        user: str | int | None = None,
    ) -> StatisticTotal:
        call = self._async.total(start_date=start_date, end_date=end_date, user=user)
        return self._client._call(lambda: call)


class Client:
    """Talk to language models; the same API as AsyncClient, blocking.

    Safe to share between threads. Calls that take `wait=False` return a Future.
    """

    def __init__(
        self, config: Config | Mapping[str, Any] | None = None, *, profile: str | None = None
    ) -> None:
        import weakref

        from chinwag.loop import LoopThread

        self._async = AsyncClient(config, profile=profile)
        self.config = self._async.config
        self._loop = LoopThread(self._async._background_work, self._async._engine.aclose)
        self._portal = self._loop.portal
        self._closed = False
        self._pid = os.getpid()
        # A Client dropped unclosed closes itself without blocking whoever dropped it.
        self._finalizer = weakref.finalize(self, self._loop.request_stop, 0.0)
        self.conversations = Conversations(self)
        self.bots = Bots(self)
        self.stats = Stats(self)
        self.templates = Templates(self)
        self.workflows = Workflows(self)

    def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run an AsyncClient call on the background loop and wait for it."""
        self._check_open()
        result: T = self._portal.call(call)
        return result

    def _submit(self, call: Callable[[], Awaitable[T]]) -> Future[T]:
        """Run an AsyncClient call on the background loop; its Future at once."""
        self._check_open()
        return self._portal.start_task_soon(call)

    def _check_open(self) -> None:
        if os.getpid() != self._pid:
            raise ChinwagError(
                "This Client was made in another process (before a fork): its event loop "
                "did not come along. Create a new Client in this process."
            )
        if self._closed or not self._loop.running:
            raise ChinwagError("This Client is closed: create a new one.")

    @overload
    def ask(
        self, prompt: str, *, wait: Literal[True] = True, **options: Unpack[TurnOptions]
    ) -> Reply: ...

    @overload
    def ask(
        self, prompt: str, *, wait: Literal[False], **options: Unpack[TurnOptions]
    ) -> Future[Reply]: ...

    def ask(
        self, prompt: str, *, wait: bool = True, **options: Unpack[TurnOptions]
    ) -> Reply | Future[Reply]:
        """Send one prompt and return the whole reply (or a Future with `wait=False`)."""
        if not wait:
            return self._submit(lambda: self._async.ask(prompt, **options))
        return self._call(lambda: self._async.ask(prompt, **options))

    def stream(self, prompt: str, **options: Unpack[TurnOptions]) -> Stream:
        """Send one prompt; iterate the returned stream for text as it arrives."""
        self._check_open()
        return Stream(self._portal, self._async._engine.turn(prompt, **options), self._check_open)

    @overload
    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: Literal[False] = False,
        wait: Literal[True] = True,
        **options: Unpack[TurnOptions],
    ) -> Reply: ...

    @overload
    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: Literal[True],
        **options: Unpack[TurnOptions],
    ) -> Stream: ...

    @overload
    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        wait: Literal[False],
        **options: Unpack[TurnOptions],
    ) -> Future[Reply]: ...

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: bool = False,
        wait: bool = True,
        **options: Unpack[TurnOptions],
    ) -> Reply | Stream | Future[Reply]:
        """Answer a message list (system prompts, earlier turns, then the user's prompt)."""
        if stream:
            self._check_open()
            return Stream(
                self._portal,
                self._async._engine.turn(messages=messages, **options),
                self._check_open,
            )
        if not wait:
            return self._submit(lambda: self._async.chat(messages, **options))
        return self._call(lambda: self._async.chat(messages, **options))

    def health(self) -> Health:
        """The default provider and why, and whether the store and each provider answer."""
        return self._call(self._async.health)

    def models(self, provider: str | None = None) -> builtins.list[str]:
        """The models a provider serves (the default provider if None)."""
        return self._call(lambda: self._async.models(provider))

    def set_system_prompt(self, model: str, prompt: str | None) -> None:
        """The system prompt for every conversation on `model` (hugchat's setSystemPrompt)."""
        self._async.set_system_prompt(model, prompt)

    def set_system_prompts(self, prompts: Mapping[str, str | None]) -> None:
        self._async.set_system_prompts(prompts)

    def settle(self) -> None:
        """Wait for background work (conversation titles) to finish."""
        self._call(self._async.settle)

    def close(self) -> None:
        """Stop what is running (partial answers are stored), wait up to 30 s for
        background titles, close connections and stop the background event loop."""
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        if type(threading.current_thread()).__name__ == "WorkerThread":
            # Called from a tool, which the loop is waiting for: stop it, do not wait.
            self._loop.request_stop(grace=30.0)
            return
        self._loop.stop(grace=30.0, timeout=60.0)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
