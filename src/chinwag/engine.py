"""The engine: one chat turn, from bot to stored answer, as a stream of events.

bot -> conversation -> store the user message -> context -> provider -> events -> store
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

import anyio
from pydantic import ValidationError

from chinwag import bots as bot_book
from chinwag.config import Config
from chinwag.context import build_context
from chinwag.counting import count_words, estimate_prompt_tokens, estimate_tokens
from chinwag.errors import ChinwagError, ConfigError, InputError, ProviderError
from chinwag.providers import (
    ChatRequest,
    Finish,
    Provider,
    ToolCalls,
    choose_default,
    create_provider,
)
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
    SearchEvent,
    Source,
    Status,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolResultEvent,
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
    language: str | None  # answer in this language (aBLT)
    max_words: int | None  # the model is told the budget; max_tokens follows from it
    search: bool | None  # web search for this turn (stored with it)
    tools: Sequence[Callable[..., Any]] | None  # functions the model may call this turn


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
        self.bot_files = bot_book.BotFiles.of(config)
        self._background: set[asyncio.Task[Any]] = set()
        self._search: Any = None

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

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run work that must not delay the caller (titles); aclose waits for it."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self) -> None:
        """Wait for background work to finish, at most 30 seconds."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=30)

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.settle()
            for task in self._background:
                task.cancel()
            for provider in self._providers.values():
                await provider.aclose()
            if self._search is not None:
                await self._search.aclose()
                self._search = None
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
        # A broken bot file fails only asks with its bot, unless that is the default bot.
        broken = self.bot_files.broken()
        return Health(
            ok=results[""].ok and default_ok and self.config.settings.bot not in broken,
            default_provider=default,
            reason=reason,
            store=results[""],
            providers=providers,
            broken_bots=[
                ComponentHealth(name=slug, ok=False, latency_ms=None, detail=why)
                for slug, why in broken.items()
            ],
        )

    def shared_bots(self) -> tuple[Bot, ...]:
        """Everyone's bots: the built-in ones and those in the config dir's bots/ files."""
        return bot_book.BUILTIN_BOTS + self.bot_files.bots()

    async def visible_bots(self, user_id: int) -> list[Bot]:
        """The bots this user can use: everyone's, then the ones the user saved."""
        saved = await (await self.store()).list_bots(user_id)
        return [*self.shared_bots(), *saved]

    async def bot(self, bot: str | Bot | None, user_id: int) -> Bot:
        """A bot by uid, slug or name; shared bots resolve without touching the store."""
        if isinstance(bot, Bot):
            return bot
        key = bot or self.config.settings.bot
        found = bot_book.resolve(self.shared_bots(), key)
        if found is None:
            self.bot_files.refuse_broken(key)  # a broken file's bot: say what is wrong
            visible = await self.visible_bots(user_id)
            found = bot_book.resolve(visible, key)
            if found is None:
                raise bot_book.not_found(key, visible)
        return found

    async def user_id(self, user: str | int | None) -> tuple[int, str]:
        name = str(user) if user is not None else self.config.settings.user
        if not name.strip():
            raise InputError("user is empty: pass a user name or id, or leave it out.")
        return await (await self.store()).user_id(name), name

    def model_for(self, bot: Bot, provider: Provider) -> str:
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
        retry: bool = False,
        edit: str | None = None,
        **options: Any,
    ) -> AsyncIterator[Event]:
        """Run one turn, yielding text deltas, usage and then Done or ErrorEvent.

        With stream=False the provider may answer in one piece (one text delta).
        retry=True answers the conversation's last question again, on a new branch;
        edit=<message id> asks `prompt` instead of that question, on a new branch.
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
        if not retry and (not isinstance(prompt, str) or not prompt.strip()):
            raise InputError("The prompt is empty: say something to the model.")
        store = await self.store()
        user_id, user_name = await self.user_id(options.get("user"))
        conversation_id: str | None = options.get("conversation")
        if edit is not None:
            conversation_id = await store.find_message(user_id, edit)
        thread = None
        if conversation_id is not None:
            thread = await store.thread(user_id, user_name, conversation_id)
        # A conversation goes on with its own bot unless the call names another.
        bot = await self.bot(
            options.get("bot") or (thread.conversation.bot if thread else None), user_id
        )
        params = _params(bot, options)
        provider = self.provider(bot.provider)
        model = self.model_for(bot, provider)

        parent = thread.leaf_id if thread else None
        asked: str | None = None  # a stored question answered again (retry)
        if retry:
            question = next(
                (m for m in reversed(thread.messages) if m.role == "user"), None
            ) if thread else None  # fmt: skip
            if question is None:
                raise InputError("retry needs a conversation with a question to answer again.")
            asked, prompt, parent = question.id, question.content, question.parent_id
        elif edit is not None and thread is not None:
            original = thread.message(edit)
            if original is None or original.role != "user":
                raise InputError(
                    f"Message {edit!r} is not a user message: only questions can be edited."
                )
            parent = original.parent_id
        assert prompt is not None
        # Earlier turns' tool calls and results stay out: their answers carry what they found.
        history: list[tuple[str, str]] = [
            (m.role, m.content)
            for m in (thread.branch(parent) if thread else [])
            if m.content and m.role != "tool" and "tool_calls" not in m.meta
        ]
        history.extend(seed)
        conv_system = seed_system
        if conv_system is None and thread is not None:
            conv_system = thread.conversation.system_prompt
        system = _with_chat_options(
            self._system_prompt(options.get("system"), conv_system, bot, model), options
        )
        first_exchange = thread is None or thread.leaf_id is None

        if asked is not None:
            user_message_id = asked
            assert conversation_id is not None
        else:
            # The user's message is stored before the model is called: it is never lost.
            meta = {
                k: options[k]
                for k in ("language", "max_words", "search")
                if options.get(k) is not None
            }
            conversation_id, user_message_id = await store.start_turn(
                user_id=user_id,
                conversation_id=conversation_id,
                parent_id=parent,
                bot_uid=bot.uid,
                system_prompt=seed_system,
                seed=seed,
                prompt=prompt,
                meta=meta,
            )
        sources: list[Source] = []
        search = options.get("search")
        if search is None:
            search = bot.search
        if search:
            from chinwag.search import context_block, create_search

            query = prompt
            yield SearchEvent(step="searching", query=query)
            try:
                if self._search is None:
                    self._search = create_search(self.config.settings.search)
                sources = await self._search.search(query, self.config.settings.search.results)
            except ChinwagError as exc:  # no results is better than no answer
                yield SearchEvent(step="failed", query=query, error=str(exc))
            else:
                yield SearchEvent(step="results", query=query, results=sources)
                block = context_block(query, sources)
                system = f"{system}\n\n{block}" if system else block
        provider_window = getattr(provider, "context_window", None)
        window = self.config.context_window(
            model, provider_window(model) if provider_window else None
        )
        reserve = params.max_tokens or min(1024, window // 4)
        context = build_context(
            system=system, history=history, prompt=prompt, window=window, reserve=reserve
        )
        tools: dict[str, Any] = {}
        if bot.tools or options.get("tools"):
            from chinwag.tools import resolve

            tools = {t.name: t for t in resolve(bot.tools, options.get("tools"))}
        schemas = [t.schema() for t in tools.values()] or None
        extra: list[dict[str, Any]] = []  # this turn's tool calls and results, in order
        leaf = user_message_id
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
                    parent_id=leaf,
                    bot_uid=bot.uid,
                    model=model,
                    content=text,
                    status=status,
                    error=error,
                    usage=usage,
                    meta={"sources": [s.model_dump() for s in sources]} if sources else None,
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
                sources=sources,
            )

        try:
            rounds = 0
            while True:
                request = ChatRequest(
                    model=model, messages=[*context.messages, *extra], params=params,
                    stream=stream, tools=schemas,
                )  # fmt: skip
                calls: list[ToolCall] = []
                # aclosing: a stopped turn stops the provider now, not when collected.
                async with contextlib.aclosing(provider.stream(request)) as events:
                    async for event in events:
                        if type(event) is TextDelta:
                            parts.append(event.text)
                            yield event
                        elif type(event) is UsageEvent:
                            reported = _add_usage(reported, event.usage)
                        elif type(event) is ToolCalls:
                            calls = event.calls
                        elif type(event) is Finish:
                            finish = event.reason
                if not calls:
                    break
                rounds += 1
                limit = self.config.settings.tool_rounds
                if rounds > limit:
                    raise ProviderError(
                        f"The model asked for tools more than {limit} times in one turn, so "
                        "chinwag stopped it. Raise tool_rounds to allow more.",
                        provider=provider.name,
                    )
                said, parts = "".join(parts), []
                extra.append(
                    {
                        "role": "assistant", "content": said or None,
                        "tool_calls": [
                            {"id": c.id, "type": "function",
                             "function": {"name": c.name, "arguments": c.arguments}}
                            for c in calls
                        ],
                    }
                )  # fmt: skip
                stored: list[tuple[Role, str, dict[str, Any]]] = [
                    ("assistant", said, {"tool_calls": [c.model_dump() for c in calls]})
                ]
                for call in calls:
                    yield ToolCallEvent(call=call)
                    content, failed = await _run_tool(tools, call)
                    yield ToolResultEvent(id=call.id, name=call.name, content=content, error=failed)
                    extra.append({"role": "tool", "tool_call_id": call.id, "content": content})
                    meta = {"tool_call_id": call.id, "name": call.name, "error": failed}
                    stored.append(("tool", content, meta))
                with anyio.CancelScope(shield=True):
                    leaf = await store.add_messages(conversation_id, leaf, stored)
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
        if first_exchange and self.config.settings.titles:
            from chinwag.titles import title_in_background

            self.spawn(title_in_background(self, user_id, user_name, bot, prompt, reply))
        yield UsageEvent(usage=reply.usage)
        yield Done(reply=reply)


async def _run_tool(tools: Mapping[str, Any], call: ToolCall) -> tuple[str, bool]:
    """A tool's result as text, and whether it failed; a failure goes back to the model."""
    from chinwag.tools import parse_arguments

    found = tools.get(call.name)
    if found is None:
        return f"Error: there is no tool named {call.name!r}.", True
    try:
        arguments = parse_arguments(call.arguments)
    except ValueError as exc:
        return f"Error: the arguments are not a JSON object ({exc}).", True
    try:
        return await found.call(arguments), False
    except Exception as exc:  # the model hears of it and may try again
        return f"Error: {type(exc).__name__}: {exc}", True


def _add_usage(total: Usage | None, more: Usage) -> Usage:
    if total is None:
        return more
    return Usage(
        prompt_tokens=total.prompt_tokens + more.prompt_tokens,
        completion_tokens=total.completion_tokens + more.completion_tokens,
        estimated=total.estimated or more.estimated,
    )


def _params(bot: Bot, options: Mapping[str, Any]) -> GenerationParams:
    """The bot's sampling params with the call's on top; max_words bounds max_tokens."""
    try:
        params = bot.params.merged(
            **{name: options.get(name) for name in GenerationParams.model_fields}
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(f"Invalid {err['loc'][0]}={err.get('input')!r}: {err['msg']}.") from None
    max_words = options.get("max_words")
    if max_words is not None:
        if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words <= 0:
            raise InputError(f"max_words must be a positive whole number, not {max_words!r}.")
        if params.max_tokens is None:
            # About 4/3 tokens a word in English, and room to finish the sentence.
            params = params.merged(max_tokens=math.ceil(max_words * 5 / 3) + 8)
    return params


def _with_chat_options(system: str | None, options: Mapping[str, Any]) -> str | None:
    """The system prompt with aBLT's language and word budget added."""
    extra: list[str] = []
    language = options.get("language")
    if language is not None:
        if not isinstance(language, str) or not language.strip():
            raise InputError(f"language must name a language, like 'French', not {language!r}.")
        extra.append(f"Answer in {language.strip()}.")
    if options.get("max_words") is not None:
        extra.append(f"Answer in at most {options['max_words']} words.")
    if not extra:
        return system
    return "\n\n".join(part for part in (system, " ".join(extra)) if part)


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
