"""The sub-APIs over a chinwag server: the same methods as chinwag.conversations,
chinwag.bots, chinwag.stats and chinwag.accounts, each one request to /api/v1.

Ids are checked here only as far as building a URL needs; everything else is checked by
the server, which runs the in-process code, and its errors come back as the same classes
(tests/test_remote_parity.py holds the two places to the same results).
"""

from __future__ import annotations

import builtins
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chinwag import checks
from chinwag.bots import bot_key, bot_yaml, find
from chinwag.conversations import Turns
from chinwag.errors import InputError
from chinwag.remote.transport import segment as _id
from chinwag.stats import day_of
from chinwag.types import (
    ApiKey,
    Bot,
    Conversation,
    Message,
    NewKey,
    StatisticItem,
    Statistics,
    StatisticTotal,
    User,
)

if TYPE_CHECKING:
    from chinwag.remote import Remote


class Conversations(Turns):
    """The key's user's conversations on the server (`client.conversations`)."""

    def __init__(self, remote: Remote) -> None:
        self._remote = self._backend = remote
        self._http = remote.http

    async def create(
        self,
        *,
        bot: str | Bot | None = None,
        system: str | None = None,
        title: str | None = None,
        user: str | int | None = None,
    ) -> Conversation:
        await self._remote.as_user(user)
        body = {"bot": bot_key(bot) if bot is not None else None, "system": system, "title": title}
        return await self._http.request("POST", "/conversations", Conversation, json_body=body)

    async def list(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        query: str | None = None,
        user: str | int | None = None,
    ) -> builtins.list[Conversation]:
        limit, offset = checks.count(limit, "limit"), checks.count(offset, "offset")
        await self._remote.as_user(user)
        params = {"limit": limit, "offset": offset, "q": checks.optional_text(query, "query")}
        return await self._http.request("GET", "/conversations", list[Conversation], params=params)

    async def get(self, conversation_id: str, *, user: str | int | None = None) -> Conversation:
        await self._remote.as_user(user)
        path = f"/conversations/{_id(conversation_id, 'conversation_id')}"
        return await self._http.request("GET", path, Conversation)

    async def history(
        self, conversation_id: str, *, user: str | int | None = None
    ) -> builtins.list[Message]:
        await self._remote.as_user(user)
        path = f"/conversations/{_id(conversation_id, 'conversation_id')}/messages"
        return await self._http.request("GET", path, list[Message])

    async def delete(self, conversation_id: str, *, user: str | int | None = None) -> None:
        await self._remote.as_user(user)
        path = f"/conversations/{_id(conversation_id, 'conversation_id')}"
        await self._http.request("DELETE", path)

    async def rename(
        self, conversation_id: str, title: str, *, user: str | int | None = None
    ) -> Conversation:
        checks.text(title, "title")
        return await self._change(conversation_id, user, title=title)

    async def set_system(
        self, conversation_id: str, system: str | None, *, user: str | int | None = None
    ) -> Conversation:
        checks.optional_text(system, "system")
        return await self._change(conversation_id, user, system_prompt=system)

    async def _change(self, conversation_id: str, user: Any, **fields: Any) -> Conversation:
        await self._remote.as_user(user)
        path = f"/conversations/{_id(conversation_id, 'conversation_id')}"
        return await self._http.request("PATCH", path, Conversation, json_body=fields)

    async def switch_branch(
        self, conversation_id: str, message_id: str, *, user: str | int | None = None
    ) -> builtins.list[Message]:
        await self._remote.as_user(user)
        path = f"/conversations/{_id(conversation_id, 'conversation_id')}/current"
        body = {"message_id": checks.identifier(message_id, "message_id")}
        return await self._http.request("POST", path, list[Message], json_body=body)

    async def export(
        self, conversation_id: str, *, format: str = "json", user: str | int | None = None
    ) -> str:
        await self._remote.as_user(user)
        path = f"/conversations/{_id(conversation_id, 'conversation_id')}/export"
        return await self._http.request("GET", path, str, params={"format": format})

    async def import_json(self, text: str, *, user: str | int | None = None) -> Conversation:
        await self._remote.as_user(user)
        body = checks.text(text, "The export")
        return await self._http.request("POST", "/conversations/import", Conversation, content=body)

    async def attachment(self, sha256: str, *, user: str | int | None = None) -> bytes:
        await self._remote.as_user(user)
        return await self._http.request("GET", f"/attachments/{_id(sha256, 'sha256')}", bytes)

    async def generate_title(
        self, conversation_id: str, *, user: str | int | None = None
    ) -> Conversation:
        await self._remote.as_user(user)
        path = f"/conversations/{_id(conversation_id, 'conversation_id')}/title"
        return await self._http.request("POST", path, Conversation)


class Bots:
    """The bots the key's user can use on the server (`client.bots`)."""

    def __init__(self, remote: Remote) -> None:
        self._remote = remote
        self._http = remote.http

    async def list(self, *, user: str | int | None = None) -> builtins.list[Bot]:
        await self._remote.as_user(user)
        return await self._http.request("GET", "/bots", list[Bot])

    async def get(
        self,
        *,
        uid: str | None = None,
        slug: str | None = None,
        name: str | None = None,
        user: str | int | None = None,
    ) -> Bot | None:
        return find(await self.list(user=user), uid=uid, slug=slug, name=name)

    async def find(self, key: str | None = None, *, user: str | int | None = None) -> Bot:
        await self._remote.as_user(user)
        key = checks.bot(key) or (await self._remote.me()).default_bot
        path = f"/bots/{_id(bot_key(key), 'bot')}"
        return await self._http.request("GET", path, Bot)

    async def create(
        self, bot: Bot | None = None, *, user: str | int | None = None, **fields: Any
    ) -> Bot:
        if bot is not None and not isinstance(bot, Bot):
            raise InputError(f"bots.create takes a Bot or its fields, not {bot!r:.60}.")
        await self._remote.as_user(user)
        body = bot.model_dump(mode="json") if bot is not None else fields
        return await self._http.request("POST", "/bots", Bot, json_body=body)

    async def update(self, key: str, *, user: str | int | None = None, **changes: Any) -> Bot:
        await self._remote.as_user(user)
        path = f"/bots/{_id(key, 'bot')}"
        return await self._http.request("PATCH", path, Bot, json_body=changes)

    async def delete(self, key: str, *, user: str | int | None = None) -> None:
        await self._remote.as_user(user)
        await self._http.request("DELETE", f"/bots/{_id(key, 'bot')}")

    async def export(self, key: str, *, user: str | int | None = None) -> str:
        return bot_yaml(await self.find(key, user=user))


class Stats:
    """Usage in tokens and words on the server (`client.stats`); an admin key may ask
    for another user's."""

    def __init__(self, remote: Remote) -> None:
        self._http = remote.http

    async def usage(
        self,
        *,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
        user: str | int | None = None,
        bot: str | Bot | None = None,
        empty_days: bool = True,
        model: str | None = None,
    ) -> Statistics:
        params = {
            "start_date": _day(start_date), "end_date": _day(end_date), "user": checks.user(user),
            "bot": bot_key(checks.bot(bot)) if bot is not None else None,
            "empty_days": checks.flag(empty_days, "empty_days"),
            "model": checks.optional_name(model, "model"),
        }  # fmt: skip
        return await self._http.request("GET", "/stats/usage", Statistics, params=params)

    async def day(
        self, date: date | str | None = None, *, user: str | int | None = None
    ) -> StatisticItem:
        params = {"date": _day(date), "user": checks.user(user)}
        return await self._http.request("GET", "/stats/day", StatisticItem, params=params)

    async def total(
        self,
        *,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
        user: str | int | None = None,
    ) -> StatisticTotal:
        params = {
            "start_date": _day(start_date),
            "end_date": _day(end_date),
            "user": checks.user(user),
        }
        return await self._http.request("GET", "/stats/total", StatisticTotal, params=params)


def _day(value: date | str | None) -> date | None:
    """A date checked here as in-process (None: the server's today)."""
    return None if value is None else day_of(value)


class Accounts:
    """The server's users and keys (`client.accounts`): an admin key's, and one's own keys."""

    def __init__(self, remote: Remote) -> None:
        self._http = remote.http

    async def add_user(self, name: str, *, admin: bool = False) -> User:
        body = {"name": name, "admin": admin}
        return await self._http.request("POST", "/users", User, json_body=body)

    async def list_users(self) -> builtins.list[User]:
        return await self._http.request("GET", "/users", list[User])

    async def create_key(
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
        if isinstance(expires, date):
            expires = expires.isoformat()
        body = {
            "user": user, "name": name, "rpm": rpm, "tpm": tpm,
            "tokens_per_day": tokens_per_day, "cost_per_day": _amount(cost_per_day),
            "cost_per_month": _amount(cost_per_month), "expires": expires,
        }  # fmt: skip
        return await self._http.request("POST", "/keys", NewKey, json_body=body)

    async def list_keys(self, *, user: str | None = None) -> builtins.list[ApiKey]:
        return await self._http.request("GET", "/keys", list[ApiKey], params={"user": user})

    async def get_key(self, key_id: str, *, user: str | None = None) -> ApiKey:
        path = f"/keys/{_id(key_id, 'key_id')}"
        return await self._http.request("GET", path, ApiKey)

    async def revoke_key(self, key_id: str, *, user: str | None = None) -> ApiKey:
        path = f"/keys/{_id(key_id, 'key_id')}"
        return await self._http.request("DELETE", path, ApiKey)


def _amount(value: Any) -> Any:
    """An amount as JSON carries it: a float or Decimal as its text (exact, and NaN too,
    which JSON has no number for), so that the server checks it and names what is wrong."""
    return str(value) if isinstance(value, float | Decimal) else value


__all__ = ["Accounts", "Bots", "Conversations", "Stats"]
