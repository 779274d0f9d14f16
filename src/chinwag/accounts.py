"""Users and API keys of a chinwag server (`client.accounts`, `chinwag users`, `chinwag keys`).

A key is 256 random bits, shown once and stored only as its SHA-256; a server reads the
key's row on every request, so a revoked key stops working at once on every worker.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

from chinwag import checks
from chinwag.errors import InputError
from chinwag.types import ApiKey, NewKey, User

if TYPE_CHECKING:
    from decimal import Decimal

    from chinwag.engine import Engine
    from chinwag.store.accounts import AccountStore

KEY_PREFIX = "cw-"


def digest(key: str) -> str:
    """The form a key is stored and looked up in."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class Accounts:
    """The users of a store and their API keys (`client.accounts`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def _tables(self) -> AccountStore:
        from chinwag.store.accounts import AccountStore

        return AccountStore(await self._engine.store())

    async def add_user(self, name: str, *, admin: bool = False) -> User:
        """Add a user (a server's key acts as one); `admin=True` also promotes an existing one."""
        name = _name(name)
        admin = bool(checks.flag(admin, "admin"))
        return await (await self._tables()).add_user(name, admin=admin, stamp=datetime.now(UTC))

    async def list_users(self) -> list[User]:
        """Every user of the store, by name."""
        return await (await self._tables()).list_users()

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
        """Make an API key for a user; its secret is on the returned `.key`, and only there.
        `cost_per_day` and `cost_per_month` are money budgets in US dollars (UTC days and
        calendar months), kept to the micro-dollar."""
        user = _name(user)
        limits = {
            what: None if value is None else checks.count(value, what, maximum=10**12)
            for what, value in (("rpm", rpm), ("tpm", tpm), ("tokens_per_day", tokens_per_day))
        }
        if any(value == 0 for value in limits.values()):
            raise InputError("A limit of 0 would refuse every request: give 1 or more, or none.")
        for what, amount in (("cost_per_day", cost_per_day), ("cost_per_month", cost_per_month)):
            limits[what] = None if amount is None else checks.dollars(amount, what)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        stamp = datetime.now(UTC)
        values: dict[str, Any] = {
            "id": "key_" + secrets.token_hex(8),
            "name": checks.optional_text(name, "name"),
            "hash": digest(key),
            "prefix": key[:10],
            **limits,
            "expires_at": expiry(expires, stamp),
            "created_at": stamp,
        }
        made = await (await self._tables()).create_key(values, user)
        return NewKey(**made.model_dump(), key=key)

    async def list_keys(self, *, user: str | None = None) -> list[ApiKey]:
        """Every key (never the secrets), or one user's."""
        return await (await self._tables()).list_keys(checks.user(user))

    async def get_key(self, key_id: str, *, user: str | None = None) -> ApiKey:
        """One key by its id (of this user only, if one is given): its limits and state."""
        key_id = checks.identifier(key_id, "key id")
        return await (await self._tables()).key(key_id, checks.user(user))

    async def revoke_key(self, key_id: str, *, user: str | None = None) -> ApiKey:
        """Revoke a key by its id (of this user only, if one is given); it fails from the
        next request on."""
        key_id = checks.identifier(key_id, "key id")
        stamp = datetime.now(UTC)
        return await (await self._tables()).revoke_key(key_id, checks.user(user), stamp)


def _name(user: Any) -> str:
    name = checks.user(user)
    if name is None:
        raise InputError("user is required: the name of the user.")
    return name


def expiry(value: date | datetime | str | None, now: datetime) -> datetime | None:
    """When a key stops working: a date means the end of that day (UTC)."""
    if value is None:
        return None
    when: date | datetime
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InputError(
                f"expires must be a date or time like 2027-01-31 or 2027-01-31T12:00, "
                f"not {value!r}."
            ) from None
        if len(value.strip()) == 10:
            when = when.date()
    elif isinstance(value, date):
        when = value
    else:
        raise InputError(f"expires must be a date, a datetime or a string, not {value!r}.")
    if not isinstance(when, datetime):
        when = datetime.combine(when, time.max, tzinfo=UTC)
    elif when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when <= now:
        raise InputError(f"expires {value} is in the past: give a later date.")
    return when


__all__ = ["Accounts", "digest", "expiry"]
