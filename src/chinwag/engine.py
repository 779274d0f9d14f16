"""The engine: one chat turn, from bot to stored answer, as a stream of events.

bot -> conversation -> store the user message -> context -> provider -> events -> store
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

import anyio
from pydantic import ValidationError

from chinwag.bots import find_bot
from chinwag.config import Config
from chinwag.context import build_context
from chinwag.counting import count_words, estimate_prompt_tokens, estimate_tokens
from chinwag.errors import ChinwagError, ConfigError, InputError, ProviderError
from chinwag.providers import ChatRequest, Finish, Provider, choose_default, create_provider
from chinwag.types import (
    Bot,
    ComponentHealth,
    Done,
    ErrorEvent,
    Event,
    GenerationParams,
    Health,
    Reply,
    Role,
    Status,
    TextDelta,
    Usage,
    UsageEvent,
)

if TYPE_CHECKING:
    from chinwag.store import Store

_ROLES = ("system", "user", "assistant")


class TurnOptions(TypedDict, total=False):
    """Per-call overrides accepted by ask, stream and chat."""

    bot: str | Bot | None
    conversation: str | None
    system: str | None
    temperature: float | None
    max_tokens: int | None
    top_p: float | None
    top_k: int | None
    stop: list[str] | None
    seed: int | None
    user: str | int | None


def _split_messages(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[str | None, list[tuple[Role, str]], str]:
    """A message list's system prompt, earlier turns and final user prompt."""
    if not messages:
        raise InputError("messages is empty: pass at least one {'role': 'user', ...} message.")
    system: list[str] = []
    turns: list[tuple[Role, str]] = []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role not in _ROLES or not isinstance(content, str):
            raise InputError(
                f"messages[{i}] must be {{'role': 'system'|'user'|'assistant', 'content': str}}, "
                f"got {dict(m)!r}."
            )
        if role == "system":
            system.append(content)
        else:
            turns.append((role, content))
    if not turns or turns[-1][0] != "user":
        raise InputError("The last message must be the user's prompt (role 'user').")
    return ("\n\n".join(system) or None), turns[:-1], turns[-1][1]


class Engine:
    """Runs turns against providers and records them in the store."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._store: Store | None = None
        self._store_lock = anyio.Lock()
        self._providers: dict[str, Provider] = {}
        self._default: tuple[str, str] | None = None

    # -- resources, opened on first use --------------------------------------------------

    async def store(self) -> Store:
        if self._store is None:
            async with self._store_lock:
                if self._store is None:
                    from chinwag.store import Store  # SQLAlchemy loads on first use

                    url, echo = self.config.store_url, self.config.settings.store.echo
                    self._store = await Store.open(url, echo=echo)
        return self._store

    def default_provider(self) -> tuple[str, str]:
        """The default provider's name and the reason it was chosen."""
        if self._default is None:
            self._default = choose_default(self.config)
        return self._default

    def provider(self, name: str | None = None) -> Provider:
        name = name or self.default_provider()[0]
        provider = self._providers.get(name)
        if provider is None:
            provider = self._providers[name] = create_provider(self.config, name)
        return provider

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            for provider in self._providers.values():
                await provider.aclose()
            self._providers.clear()
            if self._store is not None:
                await self._store.close()
                self._store = None

    async def health(self) -> Health:
        """The store and every configured provider, checked at once; no completion is paid."""
        default, reason = self.default_provider()
        names = list(self.config.settings.providers)
        results: dict[str, ComponentHealth] = {}

        async def check_provider(name: str) -> None:
            try:
                found = await self.provider(name).health()
                results[name] = ComponentHealth(
                    name=name, ok=found.ok, latency_ms=found.latency_ms, detail=found.detail
                )
            except ChinwagError as exc:
                results[name] = ComponentHealth(
                    name=name, ok=False, latency_ms=None, detail=str(exc)
                )

        async def check_store() -> None:
            started = time.perf_counter()
            try:
                revision = await (await self.store()).schema_revision()
                latency = (time.perf_counter() - started) * 1000
                from sqlalchemy.engine import make_url

                shown = make_url(self.config.store_url).render_as_string(hide_password=True)
                detail = f"{shown} (schema {revision})"
                results[""] = ComponentHealth(
                    name="store", ok=True, latency_ms=latency, detail=detail
                )
            except Exception as exc:  # any failure to reach the database is the report
                results[""] = ComponentHealth(
                    name="store", ok=False, latency_ms=None, detail=f"{type(exc).__name__}: {exc}"
                )

        async with anyio.create_task_group() as tg:
            tg.start_soon(check_store)
            for name in names:
                tg.start_soon(check_provider, name)
        providers = [results[name] for name in names]
        default_ok = results[default].ok if default in results else False
        return Health(
            ok=results[""].ok and default_ok,
            default_provider=default,
            reason=reason,
            store=results[""],
            providers=providers,
        )

    def bot(self, bot: str | Bot | None) -> Bot:
        if isinstance(bot, Bot):
            return bot
        return find_bot(bot or self.config.settings.bot)

    async def user_id(self, user: str | int | None) -> tuple[int, str]:
        name = str(user) if user is not None else self.config.settings.user
        if not name.strip():
            raise InputError("user is empty: pass a user name or id, or leave it out.")
        return await (await self.store()).user_id(name), name

    def _model(self, bot: Bot, provider: Provider) -> str:
        model = bot.model or self.config.settings.model or provider.settings.model
        if not model:
            raise ConfigError(
                f"No model is set for bot {bot.slug!r} on provider {provider.name!r}: set "
                f"providers.{provider.name}.model, or the bot's model.",
                key=f"providers.{provider.name}.model",
            )
        return model

    def _system_prompt(
        self, call: str | None, conversation: str | None, bot: Bot, model: str
    ) -> str | None:
        """Precedence: the call's, then the conversation's, the bot's, the model's, the config's."""
        for candidate in (call, conversation, bot.system_prompt):
            if candidate is not None:
                return candidate
        per_model = self.config.settings.models.get(model)
        if per_model is not None and per_model.system_prompt is not None:
            return per_model.system_prompt
        return self.config.settings.system_prompt

    # -- the turn --------------------------------------------------------------------------

    async def turn(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        stream: bool = True,
        **options: Any,
    ) -> AsyncIterator[Event]:
        """Run one turn, yielding text deltas, usage and then Done or ErrorEvent.

        With stream=False the provider may answer in one piece (one text delta).
        """
        known = TurnOptions.__annotations__
        unknown = set(options) - set(known)
        if unknown:
            raise InputError(f"Unknown option(s) {sorted(unknown)}; known: {sorted(known)}.")
        seed: list[tuple[Role, str]] = []
        seed_system = None
        if messages is not None:
            if prompt is not None:
                raise InputError("Pass either a prompt or messages, not both.")
            seed_system, seed, prompt = _split_messages(messages)
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError("The prompt is empty: say something to the model.")
        try:
            bot = self.bot(options.get("bot"))
            params: GenerationParams = bot.params.merged(
                **{name: options.get(name) for name in GenerationParams.model_fields}
            )
        except ValidationError as exc:
            err = exc.errors()[0]
            raise InputError(
                f"Invalid {err['loc'][0]}={err.get('input')!r}: {err['msg']}."
            ) from None
        store = await self.store()
        user_id, user_name = await self.user_id(options.get("user"))
        provider = self.provider(bot.provider)
        model = self._model(bot, provider)

        conversation_id: str | None = options.get("conversation")
        history: list[tuple[str, str]] = []
        conv_system = seed_system
        leaf = None
        if conversation_id is not None:
            thread = await store.thread(user_id, user_name, conversation_id)
            history = [(m.role, m.content) for m in thread.messages if m.content]
            conv_system = thread.conversation.system_prompt if seed_system is None else seed_system
            leaf = thread.leaf_id
        history.extend(seed)
        system = self._system_prompt(options.get("system"), conv_system, bot, model)

        # The user's message is stored before the model is called: it is never lost.
        conversation_id, user_message_id = await store.start_turn(
            user_id=user_id,
            conversation_id=conversation_id,
            parent_id=leaf,
            bot_uid=bot.uid,
            system_prompt=seed_system,
            seed=seed,
            prompt=prompt,
        )
        provider_window = getattr(provider, "context_window", None)
        window = self.config.context_window(
            model, provider_window(model) if provider_window else None
        )
        reserve = params.max_tokens or min(1024, window // 4)
        context = build_context(
            system=system, history=history, prompt=prompt, window=window, reserve=reserve
        )
        request = ChatRequest(model=model, messages=context.messages, params=params, stream=stream)
        parts: list[str] = []
        reported: Usage | None = None
        finish: str | None = None

        async def record(status: Status, error: str | None) -> Reply:
            text = "".join(parts)
            usage = _final_usage(reported, context.messages, text)
            with anyio.CancelScope(shield=True):  # an interrupted answer is still stored
                message_id = await store.finish_turn(
                    user_id=user_id,
                    conversation_id=conversation_id,
                    parent_id=user_message_id,
                    bot_uid=bot.uid,
                    model=model,
                    content=text,
                    status=status,
                    error=error,
                    usage=usage,
                )
            return Reply(
                text=text,
                conversation_id=conversation_id,
                message_id=message_id,
                bot=bot.uid,
                provider=provider.name,
                model=model,
                usage=usage,
                status=status,
                finish_reason=finish,
                trimmed_messages=context.trimmed,
            )

        try:
            # aclosing: a stopped turn stops the provider now, not when collected.
            async with contextlib.aclosing(provider.stream(request)) as events:
                async for event in events:
                    if type(event) is TextDelta:
                        parts.append(event.text)
                        yield event
                    elif type(event) is UsageEvent:
                        reported = event.usage
                    elif type(event) is Finish:
                        finish = event.reason
        except ProviderError as exc:
            partial = await record("partial" if parts else "error", str(exc))
            exc.partial = partial
            yield ErrorEvent(message=str(exc), kind=type(exc).__name__, reply=partial, error=exc)
            return
        except ChinwagError as exc:  # e.g. the local model is not installed
            await record("error", str(exc))
            raise
        except BaseException:
            # Cancelled, interrupted or abandoned by the consumer: keep what was said.
            await record("partial" if parts else "error", "interrupted before the answer ended")
            raise
        reply = await record("complete", None)
        yield UsageEvent(usage=reply.usage)
        yield Done(reply=reply)


def _final_usage(reported: Usage | None, context: list[dict[str, str]], text: str) -> Usage:
    prompt_words = sum(count_words(m["content"]) for m in context)
    completion_words = count_words(text)
    if reported is not None:
        return Usage(
            prompt_tokens=reported.prompt_tokens,
            completion_tokens=reported.completion_tokens,
            prompt_words=prompt_words,
            completion_words=completion_words,
            estimated=reported.estimated,
        )
    return Usage(
        prompt_tokens=estimate_prompt_tokens(context),
        completion_tokens=estimate_tokens(text),
        prompt_words=prompt_words,
        completion_words=completion_words,
        estimated=True,
    )
