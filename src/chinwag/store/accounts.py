"""The SQL of a server's accounts: admin users, API keys, the web page's sessions, and the
windows keys' limits count in. Limits are conditional UPDATEs (never read-then-write), so
they hold across worker processes sharing one database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, bindparam, select
from sqlalchemy.engine import Row

from chinwag.errors import ConflictError, NotFoundError
from chinwag.store.schema import api_keys, key_windows, users, web_sessions
from chinwag.types import ApiKey, User

if TYPE_CHECKING:
    from chinwag.store.store import Store

MINUTE = 60
DAY = 86_400


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """What a key may do: act as its user, within its limits. Read afresh on each request."""

    key_id: str
    user: str
    user_id: int
    admin: bool
    rpm: int | None
    tpm: int | None
    tokens_per_day: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    digest: str  # the hash it was found by: the key's, or its session's


@dataclass(frozen=True, slots=True)
class Window:
    """One window a request was admitted into (to settle its tokens in afterwards)."""

    span: str  # "minute" or "day"
    start: int


class Refused(Exception):
    """A limit of a key is spent: which one, and when its window opens again."""

    def __init__(self, limit: str, span: str, start: int, length: int) -> None:
        self.limit = limit
        self.span = span
        self.reopens = start + length


_KEY_COLUMNS = (
    api_keys.c.id, users.c.name, api_keys.c.name, api_keys.c.prefix, api_keys.c.rpm,
    api_keys.c.tpm, api_keys.c.tokens_per_day, api_keys.c.expires_at, api_keys.c.revoked_at,
    api_keys.c.created_at,
)  # fmt: skip


def _key(row: Row[Any]) -> ApiKey:
    (id_, user, name, prefix, rpm, tpm, per_day, expires, revoked, created) = tuple(row)
    return ApiKey(
        id=id_, user=user, name=name, prefix=prefix, rpm=rpm, tpm=tpm, tokens_per_day=per_day,
        expires_at=expires, revoked_at=revoked, created_at=created,
    )  # fmt: skip


def _holders(found_by: Any) -> Select[Any]:
    """The columns of a KeyHolder, `found_by` last (the hash it was found by)."""
    return select(
        api_keys.c.id, users.c.name, users.c.id, users.c.is_admin, api_keys.c.rpm,
        api_keys.c.tpm, api_keys.c.tokens_per_day, api_keys.c.expires_at,
        api_keys.c.revoked_at, found_by,
    ).join(users, users.c.id == api_keys.c.user_id)  # fmt: skip


# Built once: composing a joined select costs more than running it, on every request.
_KEY_HOLDER = _holders(api_keys.c.hash).where(api_keys.c.hash == bindparam("digest"))
_SESSION_HOLDER = (
    _holders(web_sessions.c.hash)
    .join(web_sessions, web_sessions.c.key_id == api_keys.c.id)
    .where(
        web_sessions.c.hash == bindparam("digest"),
        web_sessions.c.user_id == api_keys.c.user_id,
        web_sessions.c.expires_at > bindparam("now"),
    )
)
_ANY_KEY = select(api_keys.c.id).limit(1)


def _user(row: Row[Any]) -> User:
    return User(name=row.name, admin=row.is_admin, created_at=row.created_at)


class AccountStore:
    """Accounts over a Store's connection runners."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- users ----------------------------------------------------------------------------

    async def add_user(self, name: str, *, admin: bool, stamp: datetime) -> User:
        """Store a new user; an existing one is a ConflictError unless `admin` promotes it."""

        def write(conn: Connection) -> User:
            row = conn.execute(select(users).where(users.c.name == name)).first()
            if row is None:
                conn.execute(users.insert().values(name=name, is_admin=admin, created_at=stamp))
            elif admin and not row.is_admin:
                conn.execute(users.update().where(users.c.name == name).values(is_admin=True))
            else:
                raise ConflictError(
                    f"The user {name!r} exists already (`chinwag users list` shows them); "
                    "`--admin` makes an existing user an admin."
                )
            return _user(conn.execute(select(users).where(users.c.name == name)).one())

        return await self._store._run(write)

    async def list_users(self) -> list[User]:
        stmt = select(users).order_by(users.c.name)
        return await self._store._run(lambda conn: [_user(r) for r in conn.execute(stmt)])

    # -- keys -----------------------------------------------------------------------------

    async def create_key(self, values: dict[str, Any], user: str) -> ApiKey:
        """Store a key (its hash, never the key) for an existing user."""

        def write(conn: Connection) -> ApiKey:
            user_id = conn.execute(select(users.c.id).where(users.c.name == user)).scalar()
            if user_id is None:
                raise NotFoundError(
                    f"No user {user!r}: create them first with `chinwag users add {user}`."
                )
            conn.execute(api_keys.insert().values(**values, user_id=user_id))
            return _key(self._keys(conn, [api_keys.c.id == values["id"]])[0])

        return await self._store._run(write)

    def _keys(self, conn: Connection, where: Sequence[Any]) -> Sequence[Any]:
        stmt = (
            select(*_KEY_COLUMNS)
            .join(users, users.c.id == api_keys.c.user_id)
            .where(*where)
            .order_by(api_keys.c.created_at, api_keys.c.id)
        )
        return conn.execute(stmt).all()

    async def list_keys(self, user: str | None) -> list[ApiKey]:
        """Every key, or one user's."""
        where = [] if user is None else [users.c.name == user]
        return await self._store._run(lambda conn: [_key(r) for r in self._keys(conn, where)])

    async def revoke_key(self, key_id: str, user: str | None, stamp: datetime) -> ApiKey:
        """Revoke a key (of this user, if one is given); another user's reads as missing."""

        def write(conn: Connection) -> ApiKey:
            where = [api_keys.c.id == key_id]
            if user is not None:
                owner = select(users.c.id).where(users.c.name == user).scalar_subquery()
                where.append(api_keys.c.user_id == owner)
            stmt = api_keys.update().where(*where, api_keys.c.revoked_at.is_(None))
            conn.execute(stmt.values(revoked_at=stamp))
            found = self._keys(conn, where)
            if not found:
                raise NotFoundError(f"No key {key_id!r}: `chinwag keys list` shows the ids.")
            return _key(found[0])

        return await self._store._run(write)

    async def any_key(self) -> bool:
        """Whether a key was ever made (revoking every key does not reopen a server)."""
        return await self._store._short(lambda conn: conn.execute(_ANY_KEY).first() is not None)

    async def holder(self, digest: str) -> KeyHolder | None:
        """The key with this hash and its user, read now: revocation counts at once."""
        found = {"digest": digest}
        row = await self._store._short(lambda conn: conn.execute(_KEY_HOLDER, found).first())
        return None if row is None else KeyHolder(*tuple(row))

    # -- web sessions ---------------------------------------------------------------------

    async def open_session(
        self, digest: str, holder: KeyHolder, *, stamp: datetime, expires: datetime
    ) -> None:
        """Store a session (its hash) for the key it was signed in with; ended sessions
        are swept out on the way, so the table holds only live ones."""
        row = {"hash": digest, "key_id": holder.key_id, "user_id": holder.user_id,
               "created_at": stamp, "expires_at": expires}  # fmt: skip

        def write(conn: Connection) -> None:
            conn.execute(web_sessions.delete().where(web_sessions.c.expires_at <= stamp))
            conn.execute(web_sessions.insert().values(**row))

        await self._store._run(write)

    async def session(self, digest: str, now: datetime) -> KeyHolder | None:
        """The key a live session acts as (read now, as a key is), or None once it ended."""
        found = {"digest": digest, "now": now}
        row = await self._store._short(lambda conn: conn.execute(_SESSION_HOLDER, found).first())
        return None if row is None else KeyHolder(*tuple(row))

    async def end_session(self, digest: str) -> None:
        """Sign out: the session is gone for every worker from the next request on."""
        stmt = web_sessions.delete().where(web_sessions.c.hash == digest)
        await self._store._run(lambda conn: conn.execute(stmt))

    # -- limits ---------------------------------------------------------------------------

    async def admit(self, holder: KeyHolder, tokens: int, clock: float) -> list[Window]:
        """Count one request and reserve `tokens` in the key's windows, all or nothing;
        Refused names the first limit that is spent."""
        minute = int(clock // MINUTE * MINUTE)
        day = int(clock // DAY * DAY)
        # (span, start, length, request limit, token limit); minute before day, always,
        # so that concurrent transactions lock rows in one order.
        spans = []
        if holder.rpm is not None or holder.tpm is not None:
            spans.append(("minute", minute, MINUTE, holder.rpm, holder.tpm))
        if holder.tokens_per_day is not None:
            spans.append(("day", day, DAY, None, holder.tokens_per_day))
        if not spans:
            return []
        insert = self._store._insert(key_windows)

        def write(conn: Connection) -> list[Window]:
            for span, start, length, max_requests, max_tokens in spans:
                key = (key_windows.c.key_id == holder.key_id) & (key_windows.c.span == span)
                conn.execute(key_windows.delete().where(key, key_windows.c.start < start))
                conn.execute(
                    insert.values(key_id=holder.key_id, span=span, start=start, requests=0,
                                  tokens=0).on_conflict_do_nothing()
                )  # fmt: skip
                stmt = key_windows.update().where(key, key_windows.c.start == start)
                if max_requests is not None:
                    stmt = stmt.where(key_windows.c.requests < max_requests)
                if max_tokens is not None:
                    stmt = stmt.where(key_windows.c.tokens + tokens <= max_tokens)
                done = conn.execute(
                    stmt.values(
                        requests=key_windows.c.requests + 1,
                        tokens=key_windows.c.tokens + tokens,
                    )
                )
                if not done.rowcount:
                    row = conn.execute(
                        select(key_windows.c.requests).where(key, key_windows.c.start == start)
                    ).scalar()
                    spent = max_requests is not None and (row or 0) >= max_requests
                    raise Refused("requests" if spent else "tokens", span, start, length)
            return [Window(span, start) for span, start, *_ in spans]

        return await self._store._short(write)

    async def settle(
        self, key_id: str, windows: list[Window], delta: int, *, requests: int = 0
    ) -> None:
        """Replace a reservation by what was used: add `delta` (used - reserved) tokens, and
        `requests` (-1 gives back a request that was refused before the model was asked)."""
        if not windows or not (delta or requests):
            return

        def write(conn: Connection) -> None:
            for window in windows:
                conn.execute(
                    key_windows.update()
                    .where(
                        key_windows.c.key_id == key_id,
                        key_windows.c.span == window.span,
                        key_windows.c.start == window.start,
                    )
                    .values(
                        tokens=key_windows.c.tokens + delta,
                        requests=key_windows.c.requests + requests,
                    )
                )

        await self._store._short(write)


__all__ = ["AccountStore", "KeyHolder", "Refused", "Window"]
