"""The Store: every SQL statement chinwag runs lives here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Row
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from chinwag.errors import ConfigError, NotFoundError
from chinwag.store.schema import SCHEMA_REVISION, conversations, messages, usage_daily, users
from chinwag.types import Conversation, Message, Role, Status, Usage


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> datetime:
    return datetime.now(UTC)


def normalize_url(url: str) -> str:
    """Accept the URLs people write and pick chinwag's async drivers for them."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://") and not url.startswith("sqlite+"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    if url.startswith(("sqlite+aiosqlite://", "postgresql+psycopg://")):
        return url
    raise ConfigError(
        f"Unsupported store.url {url!r}: use sqlite:///path/to/file.db or "
        "postgresql://user:password@host/dbname.",
        key="store.url",
        value=url,
    )


@dataclass(slots=True)
class Thread:
    """A conversation and the messages of its current branch, oldest first."""

    conversation: Conversation
    messages: list[Message]
    leaf_id: str | None


def _message(row: Row[Any]) -> Message:
    usage = None
    if row.prompt_tokens is not None:
        usage = Usage(
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens or 0,
            prompt_words=row.prompt_words or 0,
            completion_words=row.completion_words or 0,
            estimated=bool(row.usage_estimated),
        )
    return Message(
        id=row.id,
        conversation_id=row.conversation_id,
        parent_id=row.parent_id,
        role=row.role,
        content=row.content,
        status=row.status,
        model=row.model,
        usage=usage,
        error=row.error,
        created_at=row.created_at,
    )


def _conversation(row: Row[Any], user: str) -> Conversation:
    return Conversation(
        id=row.id,
        title=row.title,
        bot=row.bot_uid,
        user=user,
        system_prompt=row.system_prompt,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _branch(rows: Sequence[Row[Any]], leaf_id: str | None) -> list[Message]:
    by_id = {row.id: row for row in rows}
    out: list[Message] = []
    node = by_id.get(leaf_id) if leaf_id else None
    while node is not None:
        out.append(_message(node))
        node = by_id.get(node.parent_id) if node.parent_id else None
    out.reverse()
    return out


class Store:
    """Async access to users, conversations, messages and usage, on SQLite or PostgreSQL."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._user_ids: dict[str, int] = {}

    @classmethod
    async def open(cls, url: str, *, echo: bool = False) -> Store:
        """Connect, and bring the schema up to date if it is behind."""
        url = normalize_url(url)
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if path and path != ":memory:":
                await (await anyio.Path(path).expanduser()).parent.mkdir(
                    parents=True, exist_ok=True
                )
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        engine = create_async_engine(url, **kwargs)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        try:
            await store._migrate()
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    async def schema_revision(self) -> str | None:
        """The revision on disk, or None for an empty database."""
        async with self.engine.connect() as conn:
            try:
                result = await conn.execute(text("SELECT version_num FROM alembic_version"))
            except (OperationalError, ProgrammingError):
                return None
            return result.scalar()

    async def _migrate(self) -> None:
        # Alembic costs ~0.5 s to import: load it only when the schema is behind.
        if await self.schema_revision() == SCHEMA_REVISION:
            return
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    # -- users ----------------------------------------------------------------------------

    async def user_id(self, name: str) -> int:
        """The id of the user with this name, created on first use."""
        cached = self._user_ids.get(name)
        if cached is not None:
            return cached
        async with self.engine.begin() as conn:
            stmt = self._insert(users).values(name=name, created_at=now())
            await conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
            uid: int = (
                await conn.execute(select(users.c.id).where(users.c.name == name))
            ).scalar_one()
        self._user_ids[name] = uid
        return uid

    def _insert(self, table: Any) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    # -- conversations --------------------------------------------------------------------

    async def _conversation_row(self, conn: AsyncConnection, user_id: int, cid: str) -> Row[Any]:
        row = (
            await conn.execute(
                select(conversations).where(
                    conversations.c.id == cid, conversations.c.user_id == user_id
                )
            )
        ).first()
        if row is None:
            # Another user's conversation reads exactly like a missing one.
            raise NotFoundError(
                f"No conversation {cid!r} for this user. `conversations.list()` shows the ids."
            )
        return row

    async def thread(self, user_id: int, user: str, cid: str) -> Thread:
        """A conversation with its current branch."""
        async with self.engine.connect() as conn:
            row = await self._conversation_row(conn, user_id, cid)
            rows = (
                await conn.execute(select(messages).where(messages.c.conversation_id == cid))
            ).all()
        return Thread(
            _conversation(row, user), _branch(rows, row.current_message_id), row.current_message_id
        )

    async def conversation(self, user_id: int, user: str, cid: str) -> Conversation:
        async with self.engine.connect() as conn:
            return _conversation(await self._conversation_row(conn, user_id, cid), user)

    async def list_conversations(
        self, user_id: int, user: str, *, limit: int = 50, offset: int = 0
    ) -> list[Conversation]:
        """The user's conversations, newest activity first."""
        stmt = (
            select(conversations)
            .where(conversations.c.user_id == user_id)
            .order_by(conversations.c.updated_at.desc(), conversations.c.id)
            .limit(limit)
            .offset(offset)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_conversation(row, user) for row in rows]

    async def latest_conversation_id(self, user_id: int) -> str | None:
        stmt = (
            select(conversations.c.id)
            .where(conversations.c.user_id == user_id)
            .order_by(conversations.c.updated_at.desc())
            .limit(1)
        )
        async with self.engine.connect() as conn:
            return (await conn.execute(stmt)).scalar()

    # -- turns ----------------------------------------------------------------------------

    async def start_turn(
        self,
        *,
        user_id: int,
        conversation_id: str | None,
        parent_id: str | None,
        bot_uid: str,
        system_prompt: str | None,
        seed: Sequence[tuple[Role, str]],
        prompt: str,
    ) -> tuple[str, str]:
        """Store the user's message (and the conversation if new) before the model is called.

        Returns the conversation id and the user message's id.
        """
        stamp = now()
        rows: list[dict[str, Any]] = []
        for role, content in [*seed, ("user", prompt)]:
            mid = new_id()
            rows.append(
                {
                    "id": mid,
                    "parent_id": parent_id,
                    "role": role,
                    "content": content,
                    "status": "complete",
                    "created_at": stamp,
                }
            )
            parent_id = mid
        user_message_id = rows[-1]["id"]
        async with self.engine.begin() as conn:
            if conversation_id is None:
                conversation_id = new_id()
                await conn.execute(
                    conversations.insert().values(
                        id=conversation_id,
                        user_id=user_id,
                        bot_uid=bot_uid,
                        system_prompt=system_prompt,
                        current_message_id=user_message_id,
                        created_at=stamp,
                        updated_at=stamp,
                    )
                )
            else:
                await conn.execute(
                    conversations.update()
                    .where(conversations.c.id == conversation_id)
                    .values(current_message_id=user_message_id, updated_at=stamp)
                )
            for row in rows:
                row["conversation_id"] = conversation_id
            await conn.execute(messages.insert(), rows)
        return conversation_id, user_message_id

    async def finish_turn(
        self,
        *,
        user_id: int,
        conversation_id: str,
        parent_id: str,
        bot_uid: str,
        model: str,
        content: str,
        status: Status,
        error: str | None,
        usage: Usage,
    ) -> str:
        """Store the answer, move the conversation to it and add its usage to the rollup."""
        stamp = now()
        mid = new_id()
        failed = 1 if status != "complete" else 0
        upsert = self._insert(usage_daily).values(
            user_id=user_id,
            day=stamp.date(),
            bot_uid=bot_uid,
            model=model,
            requests=1,
            errors=failed,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            prompt_words=usage.prompt_words,
            completion_words=usage.completion_words,
        )
        counters = (
            "requests",
            "errors",
            "prompt_tokens",
            "completion_tokens",
            "prompt_words",
            "completion_words",
        )
        upsert = upsert.on_conflict_do_update(
            index_elements=["user_id", "day", "bot_uid", "model"],
            set_={c: usage_daily.c[c] + upsert.excluded[c] for c in counters},
        )
        async with self.engine.begin() as conn:
            await conn.execute(
                messages.insert().values(
                    id=mid,
                    conversation_id=conversation_id,
                    parent_id=parent_id,
                    role="assistant",
                    content=content,
                    status=status,
                    error=error,
                    model=model,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    prompt_words=usage.prompt_words,
                    completion_words=usage.completion_words,
                    usage_estimated=usage.estimated,
                    created_at=stamp,
                )
            )
            await conn.execute(
                conversations.update()
                .where(conversations.c.id == conversation_id)
                .values(current_message_id=mid, updated_at=stamp)
            )
            await conn.execute(upsert)
        return mid

    # -- usage ----------------------------------------------------------------------------

    async def usage_by_day(
        self, user_id: int, start: date, end: date
    ) -> list[tuple[date, int, int, int, int, int, int]]:
        """Per day in [start, end]: requests, errors, tokens in/out, words in/out."""
        c = usage_daily.c
        stmt = (
            select(
                c.day,
                func.sum(c.requests),
                func.sum(c.errors),
                func.sum(c.prompt_tokens),
                func.sum(c.completion_tokens),
                func.sum(c.prompt_words),
                func.sum(c.completion_words),
            )
            .where(c.user_id == user_id, c.day >= start, c.day <= end)
            .group_by(c.day)
            .order_by(c.day)
        )
        async with self.engine.connect() as conn:
            return [tuple(row) for row in (await conn.execute(stmt)).all()]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside a writer; NORMAL sync is durable across app crashes in WAL.
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "busy_timeout=10000",
        "foreign_keys=ON",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _upgrade(sync_conn: Any) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


__all__ = ["Store", "Thread", "normalize_url"]
