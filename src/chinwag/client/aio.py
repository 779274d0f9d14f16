"""AsyncClient: turns, and the sub-APIs, over one engine."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Unpack, overload

import anyio

from chinwag import checks
from chinwag.accounts import Accounts
from chinwag.bots import Bots
from chinwag.config import Config
from chinwag.conversations import Conversations
from chinwag.engine import Engine
from chinwag.errors import ChinwagError, InputError
from chinwag.plan import TurnOptions
from chinwag.stats import Stats
from chinwag.streams import AsyncStream, complete
from chinwag.templates import Templates
from chinwag.types import Health, Reply
from chinwag.workflows import Workflows

if TYPE_CHECKING:
    import ssl

    from chinwag import remote
    from chinwag.backend import Backend


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

    In-process by default; given `base_url` (or CHINWAG_URL, or `server.url` in config)
    the same calls go to that chinwag server, with `api_key` (CHINWAG_API_KEY,
    `server.api_key`) as the user; `verify` is its TLS check (False, or an SSLContext).

    `async with AsyncClient() as client:` runs background work (titles, saving answers as
    they stream) in the block's task group, under any anyio backend.
    """

    conversations: Conversations | remote.apis.Conversations
    bots: Bots | remote.apis.Bots
    stats: Stats | remote.apis.Stats
    accounts: Accounts | remote.apis.Accounts

    def __init__(
        self,
        config: Config | Mapping[str, Any] | None = None,
        *,
        profile: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.config = make_config(config, profile)
        server = self.config.settings.server
        url = checks.optional_text(base_url, "base_url") or server.url
        self._local: Engine | None = None  # None: a remote client
        self._backend: Backend
        self._server: str | None
        if url:
            from chinwag.remote import Remote, apis

            if api_key is None and server.api_key is not None:
                api_key = server.api_key.get_secret_value()
            key = checks.optional_text(api_key, "api_key")
            backend = Remote(self.config, url, key, verify=verify)
            self._backend, self._server = backend, backend.http.shown_url
            self.conversations = apis.Conversations(backend)
            self.bots = apis.Bots(backend)
            self.stats = apis.Stats(backend)
            self.accounts = apis.Accounts(backend)
        else:
            self._backend = self._local = engine = Engine(self.config)
            self._server = None
            self.conversations = Conversations(engine)
            self.bots = Bots(engine)
            self.stats = Stats(engine)
            self.accounts = Accounts(engine)
        self.templates = Templates(self._backend, self.conversations)
        self.workflows = Workflows(self._backend, self.templates, self.conversations)
        self._open: AbstractAsyncContextManager[None] | None = None

    @property
    def _engine(self) -> Engine:
        """The engine in this process (the server's client, tests, benchmarks)."""
        if self._local is None:
            raise ChinwagError(f"This client talks to {self._server}: it has no engine here.")
        return self._local

    @property
    def server(self) -> str | None:
        """The chinwag server this client talks to (any key in its URL masked); None when
        it runs the engine in-process."""
        return self._server

    async def ask(self, prompt: str, **options: Unpack[TurnOptions]) -> Reply:
        """Send one prompt and return the whole reply."""
        return await complete(self._backend.turn(prompt, stream=False, **options))

    def stream(self, prompt: str, **options: Unpack[TurnOptions]) -> AsyncStream:
        """Send one prompt; iterate the returned stream for text as it arrives."""
        return AsyncStream(self._backend.turn(prompt, **options))

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
        return await complete(self._backend.turn(messages=messages, stream=False, **options))

    def _chat_stream(
        self, messages: Sequence[Mapping[str, Any]], options: Mapping[str, Any]
    ) -> AsyncStream:
        return AsyncStream(self._backend.turn(messages=messages, **options))

    async def health(self) -> Health:
        """The default provider and why, and whether the store and each provider answer;
        for a remote client, the server's report (`server` names it)."""
        return await self._backend.health()

    async def models(self, provider: str | None = None) -> list[str]:
        """The models a provider serves (the default provider if None)."""
        return await self._backend.models(provider)

    def set_system_prompt(self, model: str, prompt: str | None) -> None:
        """The system prompt for every conversation on `model` (hugchat's setSystemPrompt),
        below per-call, per-conversation and per-bot prompts; None removes it. In-process it
        is the config's models.<model>.system_prompt; against a server, this client sends it
        with each turn, above the server's own."""
        checks.name(model, "model")
        self._backend.set_system_prompt(model, checks.optional_text(prompt, "prompt"))

    def set_system_prompts(self, prompts: Mapping[str, str | None]) -> None:
        """set_system_prompt for several models at once."""
        for model, prompt in checks.model_prompts(prompts).items():
            self._backend.set_system_prompt(model, prompt)

    async def settle(self) -> None:
        """Wait for background work (conversation titles) to finish."""
        await self._backend.settle()

    async def aclose(self, *, grace: float = 30.0) -> None:
        """Wait up to `grace` seconds for background titles, then close connections."""
        await self._backend.aclose(grace)

    @contextlib.asynccontextmanager
    async def _background_work(self) -> AsyncIterator[None]:
        """A task group for background work (titles, saving streamed answers) while open."""
        engine = self._local
        if engine is None:  # a server does its own
            yield
            return
        async with anyio.create_task_group() as group:
            engine.background.attach(group)
            try:
                yield
            finally:
                engine.background.attach(None)
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
