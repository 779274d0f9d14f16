"""AsyncClient, the engine's public face, and Client, its sync facade.

Client runs AsyncClient's coroutines on one background event loop (an anyio blocking
portal), so every behaviour has a single implementation.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Literal, TypeVar, Unpack, overload

from chinwag.config import Config
from chinwag.engine import Engine, TurnOptions
from chinwag.streams import AsyncStream, Stream
from chinwag.types import Conversation, Event, Health, Message, Reply

T = TypeVar("T")


def _config(config: Config | Mapping[str, Any] | None, profile: str | None) -> Config:
    if isinstance(config, Config):
        return config
    return Config(config, profile=profile)


class AsyncConversations:
    """The user's stored conversations."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def list(
        self, *, limit: int = 50, offset: int = 0, user: str | int | None = None
    ) -> builtins.list[Conversation]:
        """Conversations, newest activity first."""
        uid, name = await self._engine.user_id(user)
        store = await self._engine.store()
        return await store.list_conversations(uid, name, limit=limit, offset=offset)

    async def get(self, conversation_id: str, *, user: str | int | None = None) -> Conversation:
        uid, name = await self._engine.user_id(user)
        return await (await self._engine.store()).conversation(uid, name, conversation_id)

    async def history(
        self, conversation_id: str, *, user: str | int | None = None
    ) -> builtins.list[Message]:
        """The messages of the conversation's current branch, oldest first."""
        uid, name = await self._engine.user_id(user)
        thread = await (await self._engine.store()).thread(uid, name, conversation_id)
        return thread.messages


class AsyncClient:
    """Talk to language models, asynchronously; every turn is stored."""

    def __init__(
        self, config: Config | Mapping[str, Any] | None = None, *, profile: str | None = None
    ) -> None:
        self.config = _config(config, profile)
        self._engine = Engine(self.config)
        self.conversations = AsyncConversations(self._engine)

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

    @staticmethod
    async def _complete(events: AsyncIterator[Event]) -> Reply:
        stream = AsyncStream(events)
        async for _ in stream.events():
            pass
        return stream.reply

    async def aclose(self) -> None:
        await self._engine.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Conversations:
    """The user's stored conversations (sync)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._async = client._async.conversations

    def list(
        self, *, limit: int = 50, offset: int = 0, user: str | int | None = None
    ) -> builtins.list[Conversation]:
        """Conversations, newest activity first."""
        return self._client._call(lambda: self._async.list(limit=limit, offset=offset, user=user))

    def get(self, conversation_id: str, *, user: str | int | None = None) -> Conversation:
        return self._client._call(lambda: self._async.get(conversation_id, user=user))

    def history(
        self, conversation_id: str, *, user: str | int | None = None
    ) -> builtins.list[Message]:
        """The messages of the conversation's current branch, oldest first."""
        return self._client._call(lambda: self._async.history(conversation_id, user=user))


class Client:
    """Talk to language models; the same API as AsyncClient, blocking.

    Safe to share between threads. Calls that take `wait=False` return a Future.
    """

    def __init__(
        self, config: Config | Mapping[str, Any] | None = None, *, profile: str | None = None
    ) -> None:
        from anyio.from_thread import start_blocking_portal

        self._async = AsyncClient(config, profile=profile)
        self.config = self._async.config
        self._portal_cm = start_blocking_portal(name="chinwag")
        self._portal = self._portal_cm.__enter__()
        self._closed = False
        self.conversations = Conversations(self)

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
        if self._closed:
            from chinwag.errors import ChinwagError

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
        return Stream(self._portal, self._async._engine.turn(prompt, **options))

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
            return Stream(self._portal, self._async._engine.turn(messages=messages, **options))
        if not wait:
            return self._submit(lambda: self._async.chat(messages, **options))
        return self._call(lambda: self._async.chat(messages, **options))

    def health(self) -> Health:
        """The default provider and why, and whether the store and each provider answer."""
        return self._call(self._async.health)

    def close(self) -> None:
        """Close connections and stop the background event loop."""
        if self._closed:
            return
        try:
            self._portal.call(self._async.aclose)
        finally:
            self._closed = True
            self._portal_cm.__exit__(None, None, None)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
