"""AsyncClient: turns, and the sub-APIs, over one engine."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Literal, Unpack, overload

import anyio

from chinwag import checks
from chinwag.accounts import Accounts
from chinwag.bots import Bots
from chinwag.config import Config
from chinwag.conversations import Conversations
from chinwag.engine import Engine
from chinwag.errors import InputError
from chinwag.plan import TurnOptions
from chinwag.stats import Stats
from chinwag.streams import AsyncStream, complete
from chinwag.templates import Templates
from chinwag.types import Health, Reply
from chinwag.workflows import Workflows


def make_config(config: Config | Mapping[str, Any] | None, profile: str | None) -> Config:
    """A Config from what a client was given: a Config, a mapping of dotted keys, or None."""
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


class AsyncClient:
    """Talk to language models, asynchronously; every turn is stored.

    `async with AsyncClient() as client:` runs background work (titles, saving answers as
    they stream) in the block's task group, under any anyio backend.
    """

    def __init__(
        self, config: Config | Mapping[str, Any] | None = None, *, profile: str | None = None
    ) -> None:
        self.config = make_config(config, profile)
        self._engine = Engine(self.config)
        self.conversations = Conversations(self._engine)
        self.bots = Bots(self._engine)
        self.stats = Stats(self._engine)
        self.templates = Templates(self._engine)
        self.workflows = Workflows(self._engine, self.templates)
        self.accounts = Accounts(self._engine)
        self._open: AbstractAsyncContextManager[None] | None = None

    async def ask(self, prompt: str, **options: Unpack[TurnOptions]) -> Reply:
        """Send one prompt and return the whole reply."""
        return await complete(self._engine.turn(prompt, stream=False, **options))

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
        if stream:
            return self._chat_stream(messages, options)
        return await complete(self._engine.turn(messages=messages, stream=False, **options))

    def _chat_stream(
        self, messages: Sequence[Mapping[str, Any]], options: Mapping[str, Any]
    ) -> AsyncStream:
        return AsyncStream(self._engine.turn(messages=messages, **options))

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

    async def aclose(self, *, grace: float = 30.0) -> None:
        """Wait up to `grace` seconds for background titles, then close connections."""
        await self._engine.aclose(grace)

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
            if self._open is not None:
                # The body's exception is the caller's, not the background group's to wrap.
                await self._open.__aexit__(None, None, None)
                self._open = None


__all__ = ["AsyncClient", "make_config"]
