"""The SQL of a server's accounts: admin users, API keys, the web page's sessions, and the
windows keys' limits count in. Limits are conditional UPDATEs (never read-then-write), so
they hold across worker processes sharing one database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, bindparam, select
from sqlalchemy.engine import Row

from chinwag.errors import ConflictError, NotFoundError
from chinwag.prices import MICRO
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
    cost_per_day: int | None  # micro-dollars
    cost_per_month: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    digest: str  # the hash it was found by: the key's, or its session's

    @property
    def limited(self) -> bool:
        return not (self.rpm is None and self.tpm is None and self.tokens_per_day is None
                    and self.cost_per_day is None and self.cost_per_month is None)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Window:
    """One window a request was admitted into (to settle what it used in afterwards)."""

    span: str  # "minute", "day" or "month"
    start: int


class Refused(Exception):
    """A limit of a key is spent: which one ("requests", "tokens" or "cost"), in which
    window, and when that window opens again."""

    def __init__(self, limit: str, span: str, reopens: int) -> None:
        self.limit = limit
        self.span = span
        self.reopens = reopens


def month_of(clock: float) -> tuple[int, int]:
    """The first second of the calendar month (UTC) this moment is in, and of the next."""
    now = datetime.fromtimestamp(clock, UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    after = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp()), int(after.timestamp())


_KEY_COLUMNS = (
    api_keys.c.id, users.c.name, api_keys.c.name, api_keys.c.prefix, api_keys.c.rpm,
    api_keys.c.tpm, api_keys.c.tokens_per_day, api_keys.c.cost_per_day,
    api_keys.c.cost_per_month, api_keys.c.expires_at, api_keys.c.revoked_at,
    api_keys.c.created_at,
)  # fmt: skip


def _dollars(micro: int | None) -> float | None:
    return None if micro is None else micro / MICRO


def _key(row: Row[Any]) -> ApiKey:
    (id_, user, name, prefix, rpm, tpm, per_day, cost_day, cost_month, expires, revoked,
     created) = tuple(row)  # fmt: skip
    return ApiKey(
        id=id_, user=user, name=name, prefix=prefix, rpm=rpm, tpm=tpm, tokens_per_day=per_day,
        cost_per_day=_dollars(cost_day), cost_per_month=_dollars(cost_month),
        expires_at=expires, revoked_at=revoked, created_at=created,
    )  # fmt: skip


def _holders(found_by: Any) -> Select[Any]:
    """The columns of a KeyHolder, `found_by` last (the hash it was found by)."""
    return select(
        api_keys.c.id, users.c.name, users.c.id, users.c.is_admin, api_keys.c.rpm,
        api_keys.c.tpm, api_keys.c.tokens_per_day, api_keys.c.cost_per_day,
        api_keys.c.cost_per_month, api_keys.c.expires_at, api_keys.c.revoked_at, found_by,
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


def _owned(key_id: str, user: str | None) -> list[Any]:
    """The key with this id, if `user` (when given) owns it: the owner is in the SQL."""
    where = [api_keys.c.id == key_id]
    if user is not None:
        owner = select(users.c.id).where(users.c.name == user).scalar_subquery()
        where.append(api_keys.c.user_id == owner)
    return where


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

    async def key(self, key_id: str, user: str | None) -> ApiKey:
        """One key (of this user, if one is given); another user's reads as missing."""

        def read(conn: Connection) -> ApiKey:
            return _key(self._found(conn, _owned(key_id, user), key_id))

        return await self._store._run(read)

    async def revoke_key(self, key_id: str, user: str | None, stamp: datetime) -> ApiKey:
        """Revoke a key (of this user, if one is given); another user's reads as missing."""

        def write(conn: Connection) -> ApiKey:
            where = _owned(key_id, user)
            stmt = api_keys.update().where(*where, api_keys.c.revoked_at.is_(None))
            conn.execute(stmt.values(revoked_at=stamp))
            return _key(self._found(conn, where, key_id))

        return await self._store._run(write)

    def _found(self, conn: Connection, where: Sequence[Any], key_id: str) -> Row[Any]:
        found = self._keys(conn, where)
        if not found:
            raise NotFoundError(f"No key {key_id!r}: `chinwag keys list` shows the ids.")
        row: Row[Any] = found[0]
        return row

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

    async def used(self, holder: KeyHolder, clock: float) -> dict[str, tuple[int, int]]:
        """What the key's windows have used so far: span -> (tokens, micro-dollars); a span
        missing here has used nothing yet."""
        now = {
            "minute": int(clock // MINUTE * MINUTE),
            "day": int(clock // DAY * DAY),
            "month": month_of(clock)[0],
        }
        c = key_windows.c
        stmt = select(c.span, c.start, c.tokens, c.cost).where(c.key_id == holder.key_id)
        rows = await self._store._short(lambda conn: conn.execute(stmt).all())
        return {
            span: (tokens, cost) for span, start, tokens, cost in rows if now.get(span) == start
        }

    async def admit(self, holder: KeyHolder, tokens: int, cost: int, clock: float) -> list[Window]:
        """Count one request and reserve `tokens` and `cost` (micro-dollars) in the key's
        windows, all or nothing; Refused names the first limit that is spent."""
        minute = int(clock // MINUTE * MINUTE)
        day = int(clock // DAY * DAY)
        # (span, start, end, request limit, token limit, cost limit); minute, day, month,
        # always in this order, so that concurrent transactions lock rows in one order.
        spans: list[tuple[str, int, int, int | None, int | None, int | None]] = []
        if holder.rpm is not None or holder.tpm is not None:
            spans.append(("minute", minute, minute + MINUTE, holder.rpm, holder.tpm, None))
        if holder.tokens_per_day is not None or holder.cost_per_day is not None:
            spans.append(("day", day, day + DAY, None, holder.tokens_per_day, holder.cost_per_day))
        if holder.cost_per_month is not None:
            spans.append(("month", *month_of(clock), None, None, holder.cost_per_month))
        if not spans:
            return []
        insert = self._store._insert(key_windows)
        counts = (key_windows.c.requests, key_windows.c.tokens)

        def write(conn: Connection) -> list[Window]:
            for span, start, end, max_requests, max_tokens, max_cost in spans:
                key = (key_windows.c.key_id == holder.key_id) & (key_windows.c.span == span)
                conn.execute(key_windows.delete().where(key, key_windows.c.start < start))
                conn.execute(
                    insert.values(key_id=holder.key_id, span=span, start=start, requests=0,
                                  tokens=0, cost=0).on_conflict_do_nothing()
                )  # fmt: skip
                this = key & (key_windows.c.start == start)
                stmt = key_windows.update().where(this)
                if max_requests is not None:
                    stmt = stmt.where(key_windows.c.requests < max_requests)
                if max_tokens is not None:
                    stmt = stmt.where(key_windows.c.tokens + tokens <= max_tokens)
                if max_cost is not None:
                    stmt = stmt.where(key_windows.c.cost + cost <= max_cost)
                done = conn.execute(
                    stmt.values(
                        requests=key_windows.c.requests + 1,
                        tokens=key_windows.c.tokens + tokens,
                        cost=key_windows.c.cost + cost,
                    )
                )
                if not done.rowcount:  # which limit: read after the refusal, to name it
                    requests, used = conn.execute(select(*counts).where(this)).one()
                    if max_requests is not None and requests >= max_requests:
                        raise Refused("requests", span, end)
                    if max_tokens is not None and used + tokens > max_tokens:
                        raise Refused("tokens", span, end)
                    raise Refused("cost", span, end)
            return [Window(span, start) for span, start, *_ in spans]

        return await self._store._short(write)

    async def settle(
        self, key_id: str, windows: list[Window], tokens: int, cost: int, *, requests: int = 0
    ) -> None:
        """Replace a reservation by what was used: add `tokens` and `cost` (micro-dollars),
        each used minus reserved, and `requests` (-1 gives back a request that was refused
        before the model was asked)."""
        if not windows or not (tokens or cost or requests):
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
                        requests=key_windows.c.requests + requests,
                        tokens=key_windows.c.tokens + tokens,
                        cost=key_windows.c.cost + cost,
                    )
                )

        await self._store._short(write)


__all__ = ["AccountStore", "KeyHolder", "Refused", "Window"]
