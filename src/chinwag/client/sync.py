"""Client: AsyncClient's blocking facade, and the sync faces of its sub-APIs.

Each call runs the AsyncClient's coroutine on one background event loop (chinwag.loop),
so there is no second implementation of anything here: only forwarding, and the
`wait=False` Futures hugchat's callers expect.
"""

from __future__ import annotations

import builtins
import os
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Unpack, overload

from chinwag.closing import Closing
from chinwag.errors import ChinwagError

if TYPE_CHECKING:  # imported when a Client is made: `from chinwag import Client` stays light
    import ssl
    from decimal import Decimal

    from chinwag.config import Config
    from chinwag.plan import TurnOptions
    from chinwag.streams import AsyncStream, Stream
    from chinwag.templates import Rendered, Template
    from chinwag.types import (
        ApiKey,
        Bot,
        Conversation,
        Health,
        Message,
        NewKey,
        Reply,
        StatisticItem,
        Statistics,
        StatisticTotal,
        User,
    )
    from chinwag.workflows import Progress, Workflow, WorkflowResult

T = TypeVar("T")


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
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        query: str | None = None,
        user: str | int | None = None,
    ) -> builtins.list[Conversation]:
        """Conversations, newest activity first; with `query`, those that mention it."""
        return self._client._call(
            lambda: self._async.list(limit=limit, offset=offset, query=query, user=user)
        )

    def set_system(
        self, conversation_id: str, system: str | None, *, user: str | int | None = None
    ) -> Conversation:
        """The conversation's own system prompt (None: its bot's, and so on down)."""
        return self._client._call(
            lambda: self._async.set_system(conversation_id, system, user=user)
        )

    def latest(self, *, user: str | int | None = None) -> Conversation | None:
        """The conversation with the newest activity, if there is one."""
        return self._client._call(lambda: self._async.latest(user=user))

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

    @overload
    def retry(
        self,
        conversation_id: str,
        *,
        stream: Literal[False] = False,
        **options: Unpack[TurnOptions],
    ) -> Reply: ...

    @overload
    def retry(
        self, conversation_id: str, *, stream: Literal[True], **options: Unpack[TurnOptions]
    ) -> Stream: ...

    def retry(
        self, conversation_id: str, *, stream: bool = False, **options: Unpack[TurnOptions]
    ) -> Reply | Stream:
        """Answer the conversation's last question again; the old answer stays on its branch.
        With stream=True, the answer as it comes (a Stream)."""
        if stream:
            return self._client._streamed(self._async._retry_stream(conversation_id, options))
        return self._client._call(lambda: self._async.retry(conversation_id, **options))

    @overload
    def edit(
        self,
        message_id: str,
        text: str,
        *,
        stream: Literal[False] = False,
        **options: Unpack[TurnOptions],
    ) -> Reply: ...

    @overload
    def edit(
        self, message_id: str, text: str, *, stream: Literal[True], **options: Unpack[TurnOptions]
    ) -> Stream: ...

    def edit(
        self, message_id: str, text: str, *, stream: bool = False, **options: Unpack[TurnOptions]
    ) -> Reply | Stream:
        """Ask `text` instead of an earlier question: a new branch from there, answered.
        With stream=True, the answer as it comes (a Stream)."""
        if stream:
            return self._client._streamed(self._async._edit_stream(message_id, text, options))
        return self._client._call(lambda: self._async.edit(message_id, text, **options))

    def switch_branch(
        self, conversation_id: str, message_id: str, *, user: str | int | None = None
    ) -> builtins.list[Message]:
        """Make the branch through `message_id` current, down to its newest answer; the
        messages of that branch, oldest first."""
        return self._client._call(
            lambda: self._async.switch_branch(conversation_id, message_id, user=user)
        )

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

    def attachment(self, sha256: str, *, user: str | int | None = None) -> bytes:
        """The bytes of a file attached to one of the user's messages, by its sha256."""
        return self._client._call(lambda: self._async.attachment(sha256, user=user))


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
        """Check a template's text (front matter and Jinja2) and store it as NAME.md."""
        return self._client._call(lambda: self._async.save(name, text))

    def render(
        self, name: str, variables: Mapping[str, Any] | None = None, /, **more: Any
    ) -> Rendered:
        """Fill a template in, in the sandbox; missing variables are named."""
        return self._client._call(lambda: self._async.render(name, variables, **more))

    def run(
        self,
        name: str,
        variables: Mapping[str, Any] | None = None,
        /,
        *,
        options: TurnOptions | None = None,
        **more: Any,
    ) -> Reply:
        """Send a filled-in template as a turn, with its bot, system prompt and parameters."""
        return self._client._call(lambda: self._async.run(name, variables, options=options, **more))


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
        args: Mapping[str, Any] | None = None,
        /,
        *,
        user: str | int | None = None,
        on_step: Progress | None = None,
        **more: Any,
    ) -> WorkflowResult:
        """Run a workflow with its arguments; each step's turn is stored."""
        return self._client._call(
            lambda: self._async.run(name, args, user=user, on_step=on_step, **more)
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
        empty_days: bool = True,
        model: str | None = None,
    ) -> Statistics:
        """One item per day from start_date to end_date (default: today), and the total;
        `empty_days=False` lists only the days with use, over any span (as aBLT's); one
        bot's or one model's use only, if given."""
        call = self._async.usage(
            start_date=start_date, end_date=end_date, user=user, bot=bot,
            empty_days=empty_days, model=model,
        )  # fmt: skip
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


class Accounts(_Sync):
    """The users of a store and their API keys (sync)."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._async = client._async.accounts

    def add_user(self, name: str, *, admin: bool = False) -> User:
        """Add a user (a server's key acts as one); `admin=True` also promotes an existing one."""
        return self._client._call(lambda: self._async.add_user(name, admin=admin))

    def list_users(self) -> builtins.list[User]:
        return self._client._call(self._async.list_users)

    def create_key(
        self,
        user: str,
        *,
        name: str | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        tokens_per_day: int | None = None,
        cost_per_day: float | Decimal | str | None = None,
        cost_per_month: float | Decimal | str | None = None,
        expires: date | datetime | str | None = None,
    ) -> NewKey:
        """Make an API key for a user; its secret is on the returned `.key`, and only there.
        `cost_per_day` and `cost_per_month` are money budgets in US dollars."""
        call = self._async.create_key(
            user, name=name, rpm=rpm, tpm=tpm, tokens_per_day=tokens_per_day,
            cost_per_day=cost_per_day, cost_per_month=cost_per_month, expires=expires,
        )  # fmt: skip
        return self._client._call(lambda: call)

    def list_keys(self, *, user: str | None = None) -> builtins.list[ApiKey]:
        return self._client._call(lambda: self._async.list_keys(user=user))

    def get_key(self, key_id: str, *, user: str | None = None) -> ApiKey:
        """One key by its id (of this user only, if one is given): its limits and state."""
        return self._client._call(lambda: self._async.get_key(key_id, user=user))

    def revoke_key(self, key_id: str, *, user: str | None = None) -> ApiKey:
        return self._client._call(lambda: self._async.revoke_key(key_id, user=user))


class Client(Closing):
    """Talk to language models; the same API as AsyncClient, blocking.

    In-process, or over HTTP with a chinwag server given `base_url` (or CHINWAG_URL).
    Safe to share between threads. Calls that take `wait=False` return a Future.
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any] | None = None,
        *,
        profile: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        import weakref

        from chinwag.client.aio import AsyncClient
        from chinwag.loop import LoopThread

        self._async = AsyncClient(
            config, profile=profile, base_url=base_url, api_key=api_key, verify=verify
        )
        self.config = self._async.config
        # The loop must not hold this Client (only what it runs), or a dropped Client would
        # never be collected and never closed.
        aclose = self._async.aclose
        self._loop = LoopThread(self._async._background_work, lambda grace: aclose(grace=grace))
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
        self.accounts = Accounts(self)

    @property
    def server(self) -> str | None:
        """The chinwag server this client talks to (any key in its URL masked); None when
        it runs the engine in-process."""
        return self._async.server

    def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run an AsyncClient call on the background loop and wait for it."""
        self._check_open()
        result: T = self._loop.submit(call).result()
        return result

    def _submit(self, call: Callable[[], Awaitable[T]]) -> Future[T]:
        """Run an AsyncClient call on the background loop; its Future at once."""
        self._check_open()
        return self._loop.submit(call)

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
        return self._streamed(self._async.stream(prompt, **options))

    def _streamed(self, events: AsyncStream) -> Stream:
        """A sync Stream over the events of an AsyncStream, read on the client's loop."""
        from chinwag.streams import Stream

        self._check_open()
        return Stream(self._portal, events, self._check_open)

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
            return self._streamed(self._async._chat_stream(messages, options))
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
