"""aBLT's Python wrapper (`ablt_python_api`) over chinwag: `from chinwag.compat.ablt import
ABLTApi, ABLTApi_async, DoneException`.

With no `base_url` (and no CHINWAG_URL) the bots, chats and statistics are chinwag's own,
in-process, and no token is needed; with `base_url` and `bearer_token` (or ABLT_BEARER_TOKEN,
or CHINWAG_API_KEY) they are a `chinwag serve`'s, with that key, over TLS as `ssl_context` or
`ssl_verify` say. A server's key acts as its own user: `user_id` may name only that user (a
PermissionDeniedError otherwise; an admin's key may read anyone's statistics). The
constructor never waits on the network (aBLT's retried a health check for up to 50 s).
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

from chinwag import checks
from chinwag.client.aio import AsyncClient
from chinwag.client.sync import Client
from chinwag.closing import Closing
from chinwag.compat import connect
from chinwag.errors import ChinwagError, InputError

if TYPE_CHECKING:
    from chinwag.config import Config
    from chinwag.plan import TurnOptions
    from chinwag.types import Bot, Health, StatisticItem, Statistics, StatisticTotal

log = logging.getLogger("chinwag.compat.ablt")


C = TypeVar("C")


class DoneException(Exception):
    """Raised by a streaming `chat` after its last chunk, as aBLT's stream ended."""


# -- what both clients share: checking arguments and shaping answers --------------------


@dataclass(frozen=True)
class _Chat:
    """A chat call's arguments, checked: a prompt or a message list, and the turn's options."""

    prompt: str | None
    messages: Sequence[Mapping[str, Any]] | None
    stream: bool
    options: TurnOptions


def _user(user_id: Any) -> int | None:
    """aBLT's user_id: an int; None or -1 (aBLT's default) is the client's own user (the
    config's user in-process, the key's against a server)."""
    if user_id is None or user_id == -1:
        return None
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise InputError(f"user_id must be an int, not {type(user_id).__name__}: {user_id!r:.60}.")
    return user_id


def _chat(
    bot_uid: Any,
    bot_slug: Any,
    prompt: Any,
    messages: Any,
    stream: Any,
    user_id: Any,
    language: Any,
    max_words: Any,
    use_search: Any,
) -> _Chat:
    if prompt is None and messages is None:
        raise InputError("chat needs prompt= or messages= (the prompt last).")
    if prompt is not None and messages is not None:
        raise InputError("chat takes prompt= or messages=, not both.")
    if bot_uid is not None and bot_slug is not None:
        raise InputError("chat takes either bot_uid= or bot_slug=, not both.")
    if prompt is not None:
        checks.text(prompt, "prompt")
    if messages is not None:
        checks.messages(messages)
    if not isinstance(stream, bool):
        raise InputError(f"stream must be True or False, not {stream!r:.60}.")
    bot = checks.optional_text(bot_uid, "bot_uid") or checks.optional_text(bot_slug, "bot_slug")
    options: TurnOptions = {
        "bot": bot,
        "user": _user(user_id),
        "language": language,
        "max_words": max_words,
        "search": use_search,
    }
    checks.turn_options(options)  # wrong types fail here, not on the first chunk
    return _Chat(prompt, messages, stream, options)


def _bot(bot: Bot) -> dict[str, Any]:
    """A bot as aBLT's BotSchema dict; `model` is "default" where the provider's default runs."""
    return {
        "uid": bot.uid,
        "slug": bot.slug,
        "model": bot.model or "default",
        "name": bot.name,
        "description": bot.description,
        "welcome_message": bot.welcome_message or "",
        "avatar_url": bot.avatar_url,
    }


def _counts(counts: StatisticTotal | StatisticItem) -> dict[str, Any]:
    """chinwag's usage counters as aBLT's: original (the prompt sent), enchancement (what
    aBLT added to it: nothing here), response (the answer)."""
    return {
        "original_tokens": counts.prompt_tokens,
        "enchancement_tokens": 0,
        "response_tokens": counts.completion_tokens,
        "total_tokens": counts.total_tokens,
        "original_words": counts.prompt_words,
        "enchancement_words": 0,
        "response_words": counts.completion_words,
        "total_words": counts.total_words,
    }


def _item(item: StatisticItem) -> dict[str, Any]:
    """A day's usage as aBLT's StatisticItemSchema dict (its date as aBLT's JSON had it)."""
    return {**_counts(item), "date": item.date.isoformat()}


def _statistics(stats: Statistics) -> dict[str, Any]:
    return {"total": _counts(stats.total), "items": [_item(item) for item in stats.items]}


def _span(
    day: date | str | None, start_date: date | str | None, end_date: date | str | None
) -> tuple[date | str | None, date | str | None]:
    """The range of a total: one `date`, or start_date to end_date (default: today)."""
    if day is not None:
        if start_date is not None or end_date is not None:
            raise InputError("Pass date= or start_date=/end_date=, not both.")
        return day, day
    return start_date, end_date


def _healthy(health: Health | ChinwagError, logger: logging.Logger) -> bool:
    """aBLT's health verdict, and why not logged as aBLT's was."""
    if isinstance(health, ChinwagError):
        logger.error("Health check failed: %s", health)
        return False
    if not health.ok:
        logger.error("Health check failed: %s", health.reason)
    return health.ok


def _key(bearer_token: Any) -> str | None:
    """The server key: the bearer token, else ABLT_BEARER_TOKEN (as aBLT read it), else
    None, and the client reads CHINWAG_API_KEY. Unused in-process."""
    if bearer_token is None:
        return os.environ.get("ABLT_BEARER_TOKEN")
    return checks.text(bearer_token, "bearer_token")


def _tls(
    logger: Any, ssl_context: Any, ssl_verify: Any
) -> tuple[logging.Logger, ssl.SSLContext | bool]:
    """The logger, and how a server's certificate is checked: aBLT's ssl_context, else
    ssl_verify (False: not at all), else the system's CAs."""
    if logger is not None and not isinstance(logger, logging.Logger):
        raise InputError(f"logger must be a logging.Logger, not {logger!r:.60}.")
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise InputError(f"ssl_context must be an ssl.SSLContext, not {ssl_context!r:.60}.")
    if ssl_verify is not None and not isinstance(ssl_verify, bool):
        raise InputError(f"ssl_verify must be True or False, not {ssl_verify!r:.60}.")
    verify = ssl_context if ssl_context is not None else ssl_verify is not False
    return logger or log, verify


# -- the clients ----------------------------------------------------------------------


class _Wrapper(Generic[C]):
    """What both of aBLT's clients are made of: aBLT's constructor arguments, checked, and
    the chinwag client they open (in-process, or a server's with the bearer token)."""

    _connect: ClassVar[Callable[..., Any]]

    def __init__(
        self,
        bearer_token: str | None = None,
        base_url: str | None = None,
        logger: logging.Logger | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ssl_verify: bool | None = None,
        *,
        config: Config | Mapping[str, Any] | None = None,
    ) -> None:
        self.logger, verify = _tls(logger, ssl_context, ssl_verify)
        self.ssl_context, self.ssl_verify = ssl_context, ssl_verify
        key = _key(bearer_token)
        self._client: C = type(self)._connect(config, base_url=base_url, api_key=key, verify=verify)

    @property
    def api(self) -> Self:
        """This client (aBLT's README calls `api.api.get_bots()`)."""
        return self


class ABLTApi(_Wrapper[Client], Closing):
    """aBLT's sync client: bots, chat (a generator of text), usage statistics, health."""

    _connect = staticmethod(connect.client)

    def health_check(self) -> bool:
        """True when the store and the default provider answer."""
        try:
            return _healthy(self._client.health(), self.logger)
        except ChinwagError as exc:  # a server that cannot be reached
            return _healthy(exc, self.logger)

    def get_bots(self) -> list[dict[str, Any]]:
        """Every bot this user can chat with, as BotSchema dicts."""
        return [_bot(bot) for bot in self._client.bots.list()]

    def find_bot_by_uid(self, bot_uid: str) -> dict[str, Any] | None:
        found = self._client.bots.get(uid=checks.key(bot_uid, "bot_uid"))
        return _bot(found) if found else None

    def find_bot_by_slug(self, bot_slug: str) -> dict[str, Any] | None:
        found = self._client.bots.get(slug=checks.key(bot_slug, "bot_slug"))
        return _bot(found) if found else None

    def find_bot_by_name(self, bot_name: str) -> dict[str, Any] | None:
        """The bot with this name; a name several bots share is an error naming their slugs."""
        found = self._client.bots.get(name=checks.key(bot_name, "bot_name"))
        return _bot(found) if found else None

    def chat(
        self,
        bot_uid: str | None = None,
        bot_slug: str | None = None,
        prompt: str | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        stream: bool = False,
        user_id: int | None = None,
        language: str | None = None,
        max_words: int | None = None,
        use_search: bool | None = False,
    ) -> Generator[str, None, None]:
        """The answer as a generator: the whole text once, or with stream=True its chunks as
        they come and then DoneException. The turn runs when the generator is iterated."""
        request = _chat(
            bot_uid, bot_slug, prompt, messages, stream, user_id, language, max_words, use_search
        )
        return self._answer(request)

    def _answer(self, request: _Chat) -> Generator[str, None, None]:
        client, options = self._client, request.options
        if not request.stream:
            if request.prompt is not None:
                yield client.ask(request.prompt, **options).text
            else:
                yield client.chat(request.messages or [], **options).text
            return
        if request.prompt is not None:
            chunks = client.stream(request.prompt, **options)
        else:
            chunks = client.chat(request.messages or [], stream=True, **options)
        with chunks:  # left early: the turn stops and its partial answer is stored
            yield from chunks
        raise DoneException

    def get_usage_statistics(
        self,
        user_id: int | None = None,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
    ) -> dict[str, Any]:
        """Usage from start_date to end_date (default: today): the total, and the days used."""
        stats = self._client.stats.usage(
            start_date=start_date, end_date=end_date, user=_user(user_id), empty_days=False
        )
        return _statistics(stats)

    def get_usage_statistics_for_day(
        self, date: date | str | None = None, user_id: int | None = None
    ) -> dict[str, Any]:
        """One day's usage (default: today), zeros for a day without use."""
        return _item(self._client.stats.day(date, user=_user(user_id)))

    def get_total_usage_statistics(
        self,
        date: date | str | None = None,
        user_id: int | None = None,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
    ) -> dict[str, Any]:
        """Usage added up for a day (default: today), or from start_date to end_date."""
        start, end = _span(date, start_date, end_date)
        return _counts(
            self._client.stats.total(start_date=start, end_date=end, user=_user(user_id))
        )

    def close(self) -> None:
        """Stop what is running (partial answers are stored) and close the client."""
        self._client.close()


class ABLTApi_async(_Wrapper[AsyncClient]):
    """aBLT's async client: the same calls, awaited; `chat` is an async generator."""

    _connect = staticmethod(connect.async_client)

    async def health_check(self) -> bool:
        """True when the store and the default provider answer."""
        try:
            return _healthy(await self._client.health(), self.logger)
        except ChinwagError as exc:
            return _healthy(exc, self.logger)

    async def get_bots(self) -> list[dict[str, Any]]:
        return [_bot(bot) for bot in await self._client.bots.list()]

    async def find_bot_by_uid(self, bot_uid: str) -> dict[str, Any] | None:
        found = await self._client.bots.get(uid=checks.key(bot_uid, "bot_uid"))
        return _bot(found) if found else None

    async def find_bot_by_slug(self, bot_slug: str) -> dict[str, Any] | None:
        found = await self._client.bots.get(slug=checks.key(bot_slug, "bot_slug"))
        return _bot(found) if found else None

    async def find_bot_by_name(self, bot_name: str) -> dict[str, Any] | None:
        found = await self._client.bots.get(name=checks.key(bot_name, "bot_name"))
        return _bot(found) if found else None

    def chat(
        self,
        bot_uid: str | None = None,
        bot_slug: str | None = None,
        prompt: str | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        stream: bool = False,
        user_id: int | None = None,
        language: str | None = None,
        max_words: int | None = None,
        use_search: bool | None = False,
    ) -> AsyncGenerator[str, None]:
        """`async for text in api.chat(...)`: the whole text once, or with stream=True its
        chunks as they come and then DoneException."""
        request = _chat(
            bot_uid, bot_slug, prompt, messages, stream, user_id, language, max_words, use_search
        )
        return self._answer(request)

    async def _answer(self, request: _Chat) -> AsyncGenerator[str, None]:
        client, options = self._client, request.options
        if not request.stream:
            if request.prompt is not None:
                yield (await client.ask(request.prompt, **options)).text
            else:
                yield (await client.chat(request.messages or [], **options)).text
            return
        if request.prompt is not None:
            chunks = client.stream(request.prompt, **options)
        else:
            chunks = await client.chat(request.messages or [], stream=True, **options)
        async with chunks:
            async for text in chunks:
                yield text
        raise DoneException

    async def get_usage_statistics(
        self,
        user_id: int | None = None,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
    ) -> dict[str, Any]:
        stats = await self._client.stats.usage(
            start_date=start_date, end_date=end_date, user=_user(user_id), empty_days=False
        )
        return _statistics(stats)

    async def get_usage_statistics_for_day(
        self, date: date | str | None = None, user_id: int | None = None
    ) -> dict[str, Any]:
        return _item(await self._client.stats.day(date, user=_user(user_id)))

    async def get_total_usage_statistics(
        self,
        date: date | str | None = None,
        user_id: int | None = None,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
    ) -> dict[str, Any]:
        start, end = _span(date, start_date, end_date)
        total = await self._client.stats.total(start_date=start, end_date=end, user=_user(user_id))
        return _counts(total)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> ABLTApi_async:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.__aexit__(exc_type, exc, tb)


__all__ = ["ABLTApi", "ABLTApi_async", "DoneException"]
