"""The engine: one chat turn, planned and then run, as a stream of events.

plan (user, conversation, bot, branch, context, tools) -> store the question -> search ->
provider and tools -> the answer, saved as it streams and recorded however it ends
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio

from chinwag import attachments, checks, context, plan as planning
from chinwag.answer import Answer, add_usage
from chinwag.background import Background
from chinwag.bots import BotFiles, builtin_bots, not_found, on_model, resolve
from chinwag.config import Config
from chinwag.counting import estimate_prompt_tokens
from chinwag.errors import ChinwagError, ConfigError, NotFoundError, ProviderError, StoreError
from chinwag.plan import Plan
from chinwag.providers import (
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
    Health,
    SearchEvent,
    Source,
    Status,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolResultEvent,
    UsageEvent,
)

if TYPE_CHECKING:
    from chinwag.mcp import Servers
    from chinwag.store import Store
    from chinwag.tools import Tool

log = logging.getLogger("chinwag.engine")

# Times a turn may find its conversation moved by a turn that started just before it (no
# wait, a race lost) before it gives up and stores its exchange on a branch of its own.
_MAX_LOST_RACES = 20


class Engine:
    """Runs turns against providers and records them in the store."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._store: Store | None = None
        self._store_lock = anyio.Lock()
        self._providers: dict[str, Provider] = {}
        self._default: tuple[str, str] | None = None
        self.bot_files = BotFiles.of(config)
        self.background = Background()
        self._mcp: Servers | None = None
        self._search_backend: Any = None
        self._seen = config.settings  # the settings the cached resources were made from
        # What a change replaced: closed with the engine, as turns may still be using it.
        self._retired: list[Provider] = []
        self._retired_stores: list[Store] = []
        self._retired_search: Any = None

    # -- resources, opened on first use and remade when their settings change -------------

    def _follow_config(self) -> None:
        """After `config.set(...)`, drop what was made from settings that changed."""
        settings = self.config.settings
        if settings is self._seen:
            return
        self._seen = settings
        self._default = None
        for name, provider in list(self._providers.items()):
            if settings.providers.get(name) != provider.settings:
                self._retired.append(self._providers.pop(name))
        if self._search_backend is not None:
            self._retired_search, self._search_backend = self._search_backend, None
        store = self._store
        if store is not None:
            if store.url != self.config.store_url:
                self._retired_stores.append(store)
                self._store = None
            else:
                store.lock_timeout = settings.store.lock_timeout

    async def store(self) -> Store:
        self._follow_config()
        if self._store is None:
            async with self._store_lock:
                if self._store is None:
                    from chinwag.store import Store  # SQLAlchemy loads on first use

                    settings = self.config.settings.store
                    self._store = await Store.open(
                        self.config.store_url,
                        echo=settings.echo,
                        lock_timeout=settings.lock_timeout,
                    )
        return self._store

    @property
    def mcp(self) -> Servers:
        """The MCP servers of this engine's config, each started on first use."""
        if self._mcp is None:
            from chinwag.mcp import Servers

            self._mcp = Servers(self.config.settings.mcp.servers, self.background)
        return self._mcp

    def default_provider(self) -> tuple[str, str]:
        """The default provider's name and the reason it was chosen."""
        self._follow_config()
        if self._default is None:
            self._default = choose_default(self.config)
        return self._default

    async def models(self, provider: str | None = None) -> list[str]:
        """The models a provider serves (the default provider if None)."""
        return await self.provider(provider).models()

    def set_system_prompt(self, model: str, prompt: str | None) -> None:
        """models.<model>.system_prompt, for this engine's life (None: none of its own)."""
        self.config.set(self.config.key("models", model, "system_prompt"), prompt)

    def provider(self, name: str | None = None) -> Provider:
        self._follow_config()
        name = name or self.default_provider()[0]
        provider = self._providers.get(name)
        if provider is None:
            provider = self._providers[name] = create_provider(self.config, name)
        return provider

    async def settle(self, within: float = 30.0) -> None:
        """Wait for background work (titles) to finish, at most `within` seconds."""
        await self.background.settle(within)

    async def aclose(self, grace: float = 30.0) -> None:
        """Give background work `grace` seconds, cancel the rest, close connections."""
        with anyio.CancelScope(shield=True):
            if grace > 0:
                await self.settle(grace)
            if self._mcp is not None:
                await self._mcp.aclose()
            await self.background.cancel()
            for provider in [*self._providers.values(), *self._retired]:
                await provider.aclose()
            for store in self._retired_stores:
                await store.close()
            self._retired_stores.clear()
            for search in (self._search_backend, self._retired_search):
                if search is not None:
                    await search.aclose()
            self._search_backend = self._retired_search = None
            self._providers.clear()
            self._retired.clear()
            if self._store is not None:
                await self._store.close()
                self._store = None

    async def health(self) -> Health:
        """The store and every configured provider, checked at once; no completion is paid;
        and the bot files and plugins that are broken."""
        default, reason = self.default_provider()
        names = list(self.config.settings.providers)
        results: dict[str, ComponentHealth] = {}

        async def check(name: str) -> None:
            results[name] = await (self._provider_health(name) if name else self._store_health())

        async with anyio.create_task_group() as tg:
            for name in ["", *names]:  # "" is the store
                tg.start_soon(check, name)
        from chinwag import plugins  # loading them imports their modules: off the loop

        broken_plugins = await anyio.to_thread.run_sync(plugins.broken)
        # A broken bot file fails only asks with its bot, unless that is the default bot.
        broken = self.bot_files.broken()
        default_ok = results[default].ok if default in results else False
        return Health(
            ok=results[""].ok and default_ok and self.config.settings.bot not in broken,
            default_provider=default,
            reason=reason,
            store=results[""],
            providers=[results[name] for name in names],
            broken_bots=[_down(slug, why) for slug, why in broken.items()],
            broken_plugins=[_down(p.name, "; ".join(p.problems)) for p in broken_plugins],
            mcp=await self.mcp.health() if self.config.settings.mcp.servers else [],
        )

    async def _provider_health(self, name: str) -> ComponentHealth:
        try:
            found = await self.provider(name).health()
        except ChinwagError as exc:
            return _down(name, str(exc))
        return ComponentHealth(
            name=name, ok=found.ok, latency_ms=found.latency_ms, detail=found.detail
        )

    async def _store_health(self) -> ComponentHealth:
        started = time.perf_counter()
        try:
            store = await self.store()
            revision = await store.schema_revision()
        except Exception as exc:  # any failure to reach the database is the report
            return _down("store", f"{type(exc).__name__}: {exc}")
        latency = (time.perf_counter() - started) * 1000
        detail = f"{store.where} (schema {revision})"
        return ComponentHealth(name="store", ok=True, latency_ms=latency, detail=detail)

    def shared_bots(self) -> tuple[Bot, ...]:
        """Everyone's bots: the built-in ones and those in the config dir's bots/ files."""
        return builtin_bots() + self.bot_files.bots()

    async def visible_bots(self, user_id: int) -> list[Bot]:
        """The bots this user can use: everyone's, then the ones the user saved."""
        saved = await (await self.store()).list_bots(user_id)
        return [*self.shared_bots(), *saved]

    async def bot(self, bot: str | Bot | None, user_id: int) -> Bot:
        """A bot by uid, slug or name; shared bots resolve without touching the store."""
        bot = checks.bot(bot)
        if isinstance(bot, Bot):
            return bot
        key = bot or self.config.settings.bot
        found = resolve(self.shared_bots(), key)
        if found is None:
            self.bot_files.refuse_broken(key)  # a broken file's bot: say what is wrong
            visible = await self.visible_bots(user_id)
            found = resolve(visible, key)
            if found is None:
                raise not_found(key, visible)
        return found

    async def scope(self, user: Any, *, create: bool = False) -> tuple[Store, int, str]:
        """The store, and the user a call acts for (the default one if None); only writes
        store a new user (`create`)."""
        uid, name = await self.user_id(user, create=create)
        return await self.store(), uid, name

    async def user_id(self, user: Any, *, create: bool = False) -> tuple[int, str]:
        """The user's id and name; a user is stored on the first write, never on a read."""
        name = checks.user(user) or self.config.settings.user
        return await (await self.store()).user_id(name, create=create), name

    def model_for(self, bot: Bot, provider: Provider) -> str:
        model = bot.model or self.config.settings.model or provider.settings.model
        if not model:
            raise ConfigError(
                f"No model is set for bot {bot.slug!r} on provider {provider.name!r}: set "
                f"providers.{provider.name}.model, or the bot's model.",
                key=f"providers.{provider.name}.model",
            )
        return model

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
        """Run one turn: plan it, store the question, then answer; yields text deltas, tool
        and search steps, usage, and Done, or ErrorEvent once the question is stored.

        With stream=False the provider may answer in one piece (one text delta).
        retry=True answers the conversation's last question again, on a new branch;
        edit=<message id> asks `prompt` instead of that question, on a new branch.
        keep=False answers without storing a conversation; its usage is still counted.
        """
        keep = checks.flag(options.pop("keep", None), "keep") is not False
        request = planning.request(
            prompt, messages, stream=stream, retry=retry, edit=edit, options=options, keep=keep
        )
        if request.given:  # read and checked before anything is stored or sent
            limits = self.config.settings.attachments
            request = planning.with_files(request, await attachments.load(request.given, limits))
        plan = await self.plan(request)
        admit = request.options.get("admit")
        if admit is not None:  # a server key's limits: refused here, nothing is stored
            cap = await admit(plan)
            if cap is not None:
                plan = planning.capped(plan, cap)
        answer = await self._start(plan) if keep else Answer.unkept(await self.store(), plan)
        # From here on, everything ends in a stored answer: complete, partial or failed.
        # One generator, no nesting: every layer would cost each text delta a hand-off.
        failure: ChinwagError | None = None
        try:
            if plan.search:
                yield SearchEvent(step="searching", query=plan.prompt)
                yield await self._search(plan, answer)
            await self._fit_context(plan, answer)
            limit = self.config.settings.tool_rounds
            for rounds in range(limit + 1):
                calls: list[ToolCall] = []
                # aclosing: a stopped turn stops its provider now, not when collected.
                async with contextlib.aclosing(plan.provider.stream(answer.request())) as events:
                    async for event in events:
                        if type(event) is TextDelta:
                            answer.add(event.text)
                            answer.paused = True  # until the reader takes the next event
                            yield event
                            answer.paused = False
                            answer.pulled += 1
                        elif type(event) is UsageEvent:
                            answer.reported = add_usage(answer.reported, event.usage)
                        elif type(event) is ToolCalls:
                            calls = event.calls
                        elif type(event) is Finish:
                            answer.finish = event.reason
                if not calls:
                    break
                if plan.request.raw is not None:  # the caller runs its own tools
                    answer.tool_calls, answer.finish = calls, "tool_calls"
                    for call in calls:
                        yield ToolCallEvent(call=call)
                    break
                if rounds == limit:
                    raise _runaway(plan, limit)
                await answer.calls(calls)
                for call in calls:
                    yield ToolCallEvent(call=call)
                    yield await _run_tool(answer, call)
        except ChinwagError as exc:
            failure = exc
        except Exception as exc:  # a bug: the answer so far is still kept
            await _record_quietly(answer, f"chinwag failed: {type(exc).__name__}: {exc}")
            raise
        except BaseException:
            # Cancelled, interrupted or abandoned by the consumer: keep what was said.
            await _record_quietly(answer, "interrupted before the answer ended")
            raise
        for last in await self._end(answer, failure):
            yield last

    async def plan(self, request: planning.Request) -> Plan:
        """Read what the turn depends on (user, conversation, bot) and resolve it."""
        store = await self.store()
        user_id, user = await self.user_id(request.options.get("user"), create=True)
        conversation_id = request.conversation
        if request.edit is not None:
            conversation_id = await store.find_message(user_id, request.edit)
        thread = None
        if conversation_id is not None:
            thread = await store.thread(user_id, user, conversation_id)
        # A conversation goes on with its own bot unless the call names another.
        options = request.options
        bot = await self.bot(
            options.get("bot") or (thread.conversation.bot if thread else None), user_id
        )
        chosen = options.get("provider")
        if chosen is not None:
            self.config.require_provider(chosen)
        bot = on_model(bot, chosen, options.get("model"))
        provider = self.provider(bot.provider)
        tools: list[Tool] = []
        if bot.tools or options.get("tools"):
            from chinwag.mcp import is_mcp
            from chinwag.tools import resolve

            servers = [n for n in bot.tools if is_mcp(n)]
            served = await self.mcp.tools(servers) if servers else []
            # One tool per name, as resolve keeps them: a call's own tools win.
            given = [*served, *(options.get("tools") or ())]
            tools = resolve([n for n in bot.tools if not is_mcp(n)], given)
        return planning.make_plan(
            request, config=self.config, user_id=user_id, user=user, thread=thread, bot=bot,
            provider=provider, model=self.model_for(bot, provider), tools=tools,
        )  # fmt: skip

    async def _start(self, plan: Plan) -> Answer:
        """Store the question before the model is called, so it is never lost, and take the
        conversation for this turn.

        While another turn (a thread, a process, a server worker) answers in the same
        conversation, this one waits for it, then plans again after its answer. A crashed
        turn holds its conversation no longer than store.turn_lease.
        """
        store = await self.store()
        settings = self.config.settings.store
        lost = 0
        while True:
            answer = None
            if plan.conversation_id is not None and plan.busy:
                await self._wait_until_free(store, plan.conversation_id)
                plan = await self.plan(plan.request)
                continue
            if plan.asked_id is not None:  # retry: the question is stored already
                assert plan.conversation_id is not None
                until = datetime.now(UTC) + timedelta(seconds=settings.turn_lease)
                if await store.claim(plan.conversation_id, expected=plan.leaf_id, until=until):
                    answer = Answer(
                        store, plan, conversation_id=plan.conversation_id,
                        question_id=plan.asked_id, head=plan.leaf_id,
                        save_every=settings.save_every, lease=settings.turn_lease,
                    )  # fmt: skip
            else:
                answer = await self._store_question(store, plan, branch=lost >= _MAX_LOST_RACES)
            if answer is not None:
                answer.start(self.background)
                return answer
            lost += 1
            plan = await self.plan(plan.request)

    async def _store_question(self, store: Store, plan: Plan, *, branch: bool) -> Answer | None:
        settings = self.config.settings.store
        until = datetime.now(UTC) + timedelta(seconds=settings.turn_lease)
        started = await store.start_turn(
            user_id=plan.user_id, conversation_id=plan.conversation_id,
            parent_id=plan.parent_id, expected=plan.leaf_id, branch=branch, until=until,
            bot_uid=plan.bot.uid, system_prompt=plan.request.seed_system,
            seed=plan.request.seed, prompt=plan.prompt, meta=dict(plan.meta),
            files=plan.files, data=plan.request.data, title=self._title_now(plan),
        )  # fmt: skip
        if started is None:
            return None
        conversation_id, question_id, took = started
        return Answer(
            store, plan, conversation_id=conversation_id, question_id=question_id,
            head=question_id if took else None, save_every=settings.save_every,
            lease=settings.turn_lease,
        )  # fmt: skip

    @staticmethod
    async def _wait_until_free(store: Store, conversation_id: str) -> None:
        """Wait while another turn holds the conversation (it renews its hold as it runs)."""
        delay = 0.005
        while await store.busy(conversation_id):
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _title_now(self, plan: Plan) -> str | None:
        """A new conversation's title made from its first question, with no model call: the
        default everywhere but the shell (titles.mode), and always with the embedded model."""
        mode = self.config.settings.titles.mode
        if not plan.first_exchange or mode == "off" or self._title_later(plan):
            return None
        from chinwag.titles import fallback_title

        return fallback_title(plan.prompt)

    def _title_later(self, plan: Plan) -> bool:
        """Whether a model writes the title, in the background, after the first exchange."""
        if not plan.first_exchange or self.config.settings.titles.mode != "model":
            return False
        if not plan.request.keep:  # no conversation to title
            return False
        from chinwag.titles import model_writes

        return model_writes(self, plan.bot)

    async def _search(self, plan: Plan, answer: Answer) -> SearchEvent:
        """Search the web for the prompt; a failed search is reported, never fatal."""
        from chinwag.search import create_search

        query = plan.prompt
        try:
            if self._search_backend is None:
                self._search_backend = create_search(self.config.settings.search)
            answer.sources = await self._search_backend.search(
                query, self.config.settings.search.results
            )
        except ChinwagError as exc:  # no results is better than no answer
            return SearchEvent(step="failed", query=query, error=str(exc))
        return SearchEvent(step="results", query=query, results=answer.sources)

    async def _fit_context(self, plan: Plan, answer: Answer) -> None:
        """What the model reads (see `fitted`), with the files of the messages sent: the
        stored ones read now, only those that are sent."""
        if plan.request.raw is not None:
            answer.context = _raw_context(plan)
            return
        system, entries, answer.trimmed = fitted(plan, answer.sources)
        data = plan.request.data
        stored = {
            sha for e in entries for sha in attachments.needed(e.files, images=plan.images)
        } - data.keys()
        if stored:
            data = {**data, **await (await self.store()).blobs(plan.user_id, stored)}
        answer.context = context.messages(system, entries, data, images=plan.images)

    async def _end(self, answer: Answer, failure: ChinwagError | None) -> list[Event]:
        """Record the answer; the events that end the turn: usage and Done, or one
        ErrorEvent (a store that cannot take the answer is a failure too)."""
        plan = answer.plan
        status: Status = "complete" if failure is None else "partial" if answer.parts else "error"
        try:
            reply = await answer.record(status, None if failure is None else str(failure))
        except (StoreError, NotFoundError) as exc:  # not stored: the caller still has it
            return [ErrorEvent.of(exc, exc.partial)]
        if failure is not None:
            failure.partial = reply
            return [ErrorEvent.of(failure, reply)]
        if self._title_later(plan) and not reply.branched:
            from functools import partial

            from chinwag.titles import title_in_background

            work = partial(title_in_background, self, plan.user_id, plan.user, plan.bot)
            self.background.spawn(partial(work, plan.prompt, reply), "a conversation's title")
        return [UsageEvent(usage=reply.usage), Done(reply=reply)]


def fitted(
    plan: Plan, sources: Sequence[Source] = ()
) -> tuple[str | None, list[context.Entry], int]:
    """What the model reads of a stored conversation: the system prompt (with any search
    results), then as much history as fits the window, then the question with its files;
    and how many history messages were left out."""
    system = plan.system
    if sources:
        from chinwag.search import context_block

        block = context_block(plan.prompt, list(sources))
        system = f"{system}\n\n{block}" if system else block
    question = context.Entry("user", plan.prompt, plan.files)
    kept, trimmed = context.fit(
        system=system, history=plan.history, question=question, window=plan.window,
        reserve=plan.reserve, images=plan.images,
    )  # fmt: skip
    return system, [*kept, question], trimmed


def context_tokens(plan: Plan) -> int:
    """The tokens the model will read, estimated before anything is read or sent (what a
    key's limits reserve)."""
    if plan.request.raw is not None:
        return estimate_prompt_tokens(_raw_context(plan))
    system, entries, _ = fitted(plan)
    return context.tokens(system, entries, images=plan.images)


def _raw_context(plan: Plan) -> list[dict[str, Any]]:
    """The caller's messages as they are, after the system prompt unless they bring one."""
    raw = plan.request.raw or ()
    system = plan.system
    own = any(m.get("role") == "system" for m in raw)
    return [*([] if own or not system else [{"role": "system", "content": system}]), *raw]


def _runaway(plan: Plan, limit: int) -> ProviderError:
    return ProviderError(
        f"The model asked for tools more than {limit} times in one turn, so chinwag "
        "stopped it. Raise tool_rounds to allow more.",
        provider=plan.provider.name,
    )


def _down(name: str, why: str) -> ComponentHealth:
    return ComponentHealth(name=name, ok=False, latency_ms=None, detail=why)


async def _record_quietly(answer: Answer, error: str) -> None:
    """Record an answer that ends by an exception; a store failure must not mask it."""
    try:
        await answer.record("partial" if answer.parts else "error", error)
    except (StoreError, NotFoundError) as exc:
        log.warning("could not store the interrupted answer: %s", exc)


async def _run_tool(answer: Answer, call: ToolCall) -> ToolResultEvent:
    """Run a tool the model called and store its result; a failure goes back to the model."""
    content, failed = await _call_tool(answer.plan.tools, call)
    await answer.result(call, content, failed)
    return ToolResultEvent(id=call.id, name=call.name, content=content, error=failed)


async def _call_tool(tools: Mapping[str, Any], call: ToolCall) -> tuple[str, bool]:
    """A tool's result as text, and whether it failed."""
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
