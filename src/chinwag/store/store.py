"""The Store: every SQL statement chinwag runs lives here.

Each operation is one plain function over a SQLAlchemy Connection, run as one
transaction by the backend's runner:

- PostgreSQL: the async engine (psycopg 3), through `AsyncConnection.run_sync`.
- SQLite: a sync pysqlite engine, the whole transaction in one worker-thread hop.
  aiosqlite crosses threads for every cursor, statement, commit and reset, about
  eight hops a transaction: 1.3 ms for the user-message write against 0.43 ms here
  (bench/bench_turn.py), and the turn's budget over raw httpx is 1.5 ms.

  The two short writes of a turn go further: they run on the event loop's own
  connection, which never waits (busy_timeout=0, no autocheckpoint). If another
  writer holds the lock they fall back to the worker thread, which waits; the WAL is
  checkpointed on a thread of its own, which no turn waits for, so neither the loop
  nor a turn blocks on a lock or on the checkpoint's fsyncs.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
from sqlalchemy import (
    Connection,
    Engine,
    String,
    bindparam,
    create_engine,
    event,
    exists,
    func,
    select,
    text,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

from chinwag.errors import ConfigError, ConflictError, InputError, NotFoundError, StoreError

if TYPE_CHECKING:
    # The asyncio extension costs ~45 ms to import; only PostgreSQL needs it.
    from alembic.config import Config as AlembicConfig
    from sqlalchemy.ext.asyncio import AsyncEngine
from chinwag.store.schema import (
    SCHEMA_REVISION,
    SCHEMA_REVISIONS,
    attachment_blobs,
    bots,
    conversations,
    message_attachments,
    messages,
    usage_daily,
    users,
)
from chinwag.types import (
    USAGE_COUNTERS,
    Attachment,
    Bot,
    Conversation,
    Message,
    Role,
    Status,
    Usage,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


# The id a read uses for a user that was never stored: no row has it (ids start at 1).
NO_USER = 0


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> datetime:
    return datetime.now(UTC)


def normalize_url(url: str) -> str:
    """Accept the URLs people write and pick chinwag's drivers for them."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite+aiosqlite://"):
        return "sqlite://" + url[len("sqlite+aiosqlite://") :]
    if url.startswith(("sqlite://", "postgresql+psycopg://")):
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
    rows: Sequence[Row[Any]]  # every message, all branches
    busy: bool = False  # a turn is answering in it now
    files: Mapping[str, list[Attachment]] = field(default_factory=dict)  # by message id

    def branch(self, leaf_id: str | None) -> list[Message]:
        """The messages from the first one down to `leaf_id`, oldest first."""
        return _branch(self.rows, leaf_id, self.files)

    def message(self, message_id: str) -> Message | None:
        row = next((r for r in self.rows if r.id == message_id), None)
        return _message(row, self.files.get(message_id, ())) if row is not None else None


def _message(row: Row[Any], files: Sequence[Attachment] = ()) -> Message:
    usage = None
    if row.prompt_tokens is not None:
        usage = Usage(
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens or 0,
            prompt_words=row.prompt_words or 0,
            completion_words=row.completion_words or 0,
            estimated=bool(row.usage_estimated),
            cost=row.cost,
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
        meta=row.meta or {},
        created_at=row.created_at,
        attachments=list(files),
    )


def _message_row(m: Message) -> dict[str, Any]:
    u = m.usage
    return {
        "id": m.id, "conversation_id": m.conversation_id, "parent_id": m.parent_id,
        "role": m.role, "content": m.content, "status": m.status, "error": m.error,
        "model": m.model, "meta": m.meta or None, "created_at": m.created_at,
        "prompt_tokens": u.prompt_tokens if u else None,
        "completion_tokens": u.completion_tokens if u else None,
        "prompt_words": u.prompt_words if u else None,
        "completion_words": u.completion_words if u else None,
        "usage_estimated": u.estimated if u else None,
        "cost": u.cost if u else None,
    }  # fmt: skip


def _conversation(row: Row[Any], user: str) -> Conversation:
    found = row._mapping
    spent, unpriced = found.get("spent"), found.get("unpriced") or 0
    return Conversation(
        id=row.id,
        title=row.title,
        bot=row.bot_uid,
        user=user,
        system_prompt=row.system_prompt,
        created_at=row.created_at,
        updated_at=row.updated_at,
        cost=spent if spent is not None else None if unpriced else 0.0,
        unpriced=unpriced,
    )


def _branch(
    rows: Sequence[Row[Any]], leaf_id: str | None, files: Mapping[str, list[Attachment]]
) -> list[Message]:
    by_id = {row.id: row for row in rows}
    out: list[Message] = []
    seen: set[str] = set()
    node = by_id.get(leaf_id) if leaf_id else None
    # A cycle in stored parent ids (written by an old version or by hand) ends the walk.
    while node is not None and node.id not in seen:
        seen.add(node.id)
        out.append(_message(node, files.get(node.id, ())))
        node = by_id.get(node.parent_id) if node.parent_id else None
    out.reverse()
    return out


def _newest_leaf(rows: Sequence[Row[Any]], start: str) -> str:
    """The leaf reached from `start` by taking the newest child at each step."""
    newest: dict[str, Row[Any]] = {}
    for row in rows:
        if row.parent_id is None:
            continue
        known = newest.get(row.parent_id)
        if known is None or (row.created_at, row.id) > (known.created_at, known.id):
            newest[row.parent_id] = row
    node, seen = start, {start}
    while node in newest and newest[node].id not in seen:  # a stored cycle ends the walk
        node = newest[node].id
        seen.add(node)
    return node


def _refuse_cycles(parents: dict[str, str | None]) -> None:
    """Refuse a message tree whose parent ids loop (a message that is its own ancestor)."""
    rooted: set[str] = set()  # ids known to lead to a root
    for start in parents:
        path: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        while node is not None and node not in rooted:
            if node in on_path:
                raise InputError(
                    f"Message {node!r} is its own ancestor: the export's parent ids form a "
                    "cycle, so it is not a conversation chinwag can import."
                )
            on_path.add(node)
            path.append(node)
            node = parents.get(node)
        rooted.update(path)


# What a conversation's answers cost: the priced ones' sum, and how many had no price: an
# answer whose model had none, one stored before costs were kept, and one a crash cut off
# (saved as it streamed, it was never recorded with its usage).
_SPENT = (
    select(func.sum(messages.c.cost))
    .where(messages.c.conversation_id == conversations.c.id)
    .scalar_subquery()
    .label("spent")
)
_UNPRICED = (
    select(func.count())
    .where(
        messages.c.conversation_id == conversations.c.id,
        messages.c.cost.is_(None),
        messages.c.prompt_tokens.is_not(None)
        | ((messages.c.role == "assistant") & (messages.c.status == "partial")),
    )
    .scalar_subquery()
    .label("unpriced")
)
_WITH_SPEND = select(conversations, _SPENT, _UNPRICED)


def _conversation_row(conn: Connection, user_id: int, cid: str, *, spent: bool = False) -> Row[Any]:
    """The user's conversation (with what it cost, where that is shown), or NotFoundError."""
    stmt = (_WITH_SPEND if spent else select(conversations)).where(
        conversations.c.id == cid, conversations.c.user_id == user_id
    )
    row = conn.execute(stmt).first()
    if row is None:
        # Another user's conversation reads exactly like a missing one.
        raise NotFoundError(
            f"No conversation {cid!r} for this user. `conversations.list()` shows the ids."
        )
    return row


_LINKS, _BLOBS = message_attachments.c, attachment_blobs.c
# A conversation's files, by message, in order (with the size their blob has).
_FILES_OF = (
    select(_LINKS.message_id, _LINKS.name, _LINKS.media_type, _LINKS.sha256, _BLOBS.size)
    .join(attachment_blobs, _BLOBS.sha256 == _LINKS.sha256)
    .join(messages, messages.c.id == _LINKS.message_id)
    .where(messages.c.conversation_id == bindparam("cid"))
    .order_by(_LINKS.message_id, _LINKS.position)
)
# The links to files in a user's conversations: the only way to a blob.
_OWN_LINKS = message_attachments.join(messages, messages.c.id == _LINKS.message_id).join(
    conversations, conversations.c.id == messages.c.conversation_id
)


def _files_of(conn: Connection, cid: str) -> dict[str, list[Attachment]]:
    out: dict[str, list[Attachment]] = {}
    for row in conn.execute(_FILES_OF, {"cid": cid}):
        out.setdefault(row.message_id, []).append(
            Attachment(name=row.name, media_type=row.media_type, size=row.size, sha256=row.sha256)
        )
    return out


def _owned(user_id: int) -> Any:
    """Whether the blob of the row at hand is linked from one of this user's messages."""
    return exists(
        select(_LINKS.sha256)
        .select_from(_OWN_LINKS)
        .where(_LINKS.sha256 == _BLOBS.sha256, conversations.c.user_id == user_id)
    )


def _link(message_id: str, files: Sequence[Attachment], out: list[dict[str, Any]]) -> None:
    """The rows that link a message to its files, in order, added to `out`."""
    out.extend(
        {"message_id": message_id, "position": n, "sha256": f.sha256, "name": f.name,
         "media_type": f.media_type}
        for n, f in enumerate(files)
    )  # fmt: skip


def _store_files(
    conn: Connection, insert: Any, links: list[dict[str, Any]], data: Mapping[str, bytes]
) -> None:
    """Link messages to their files, storing each file's bytes once: a blob that is stored
    already (anyone's, the same bytes) is not sent to the database again."""
    if not links:
        return
    wanted = sorted({link["sha256"] for link in links})
    have = set(conn.execute(select(_BLOBS.sha256).where(_BLOBS.sha256.in_(wanted))).scalars())
    stamp = now()
    new = [
        {"sha256": sha, "size": len(data[sha]), "data": data[sha], "created_at": stamp}
        for sha in wanted
        if sha not in have
    ]
    if new:  # two turns storing the same new file at once: the first one's row stays
        conn.execute(
            insert(attachment_blobs).on_conflict_do_nothing(index_elements=["sha256"]), new
        )
    conn.execute(message_attachments.insert(), links)


_INSERT_CONVERSATION = conversations.insert()
_INSERT_MESSAGE = messages.insert()
# Compare-and-set: a turn moves the conversation on only from where it last left it, so
# two turns at once (threads, processes, workers) cannot interleave one branch.
_AT_EXPECTED = (conversations.c.id == bindparam("cid")) & (
    conversations.c.current_message_id.is_not_distinct_from(bindparam("expected", type_=String))
)
# Nobody holds it: no lease, or one that ran out (its turn crashed).
_FREE = conversations.c.busy_until.is_(None) | (conversations.c.busy_until < bindparam("stamp"))
_MOVE_CONVERSATION = (
    conversations.update()
    .where(_AT_EXPECTED)
    .values(
        current_message_id=bindparam("mid"),
        updated_at=bindparam("stamp"),
        busy_until=bindparam("until"),
    )
)
_TAKE_CONVERSATION = _MOVE_CONVERSATION.where(_FREE)
_RENEW_LEASE = conversations.update().where(_AT_EXPECTED).values(busy_until=bindparam("until"))
_TOUCH_CONVERSATION = (
    conversations.update()
    .where(conversations.c.id == bindparam("cid"))
    .values(updated_at=bindparam("stamp"))
)
# An answer still streaming has no usage yet; saves of it never overwrite a finished one.
_SAVE_DRAFT = (
    messages.update()
    .where(messages.c.id == bindparam("mid"), messages.c.prompt_tokens.is_(None))
    .values(content=bindparam("content"))
)
DRAFT_ERROR = "interrupted: chinwag stopped before the answer ended"


def _move(
    conn: Connection,
    cid: str,
    expected: str | None,
    mid: str,
    stamp: datetime,
    until: datetime | None,
    *,
    take: bool = False,
) -> bool:
    """Move the conversation to `mid` if it is still at `expected` (and, to `take` it, if no
    other turn holds it), holding it until `until`; whether it moved."""
    moved = conn.execute(
        _TAKE_CONVERSATION if take else _MOVE_CONVERSATION,
        {"cid": cid, "expected": expected, "mid": mid, "stamp": stamp, "until": until},
    ).rowcount
    if not moved and not conn.execute(_TOUCH_CONVERSATION, {"cid": cid, "stamp": stamp}).rowcount:
        raise _deleted()
    return bool(moved)


def _deleted() -> NotFoundError:
    return NotFoundError(
        "The conversation was deleted while chinwag was answering in it, so the answer "
        "could not be stored; it is on the error's .partial."
    )


class Store:
    """Async access to users, conversations, messages and usage, on SQLite or PostgreSQL."""

    def __init__(
        self, engine: Engine | AsyncEngine, *, where: str = "", lock_timeout: float = 15.0
    ) -> None:
        self.engine = engine
        self.url = str(engine.url)  # as configured (Store.open keeps the URL it was given)
        self.where = where or _shown(str(engine.url))
        self.lock_timeout = lock_timeout
        self.dialect = engine.dialect.name
        # PostgreSQL runs on the async engine; SQLite runs sync, in worker threads.
        self.is_postgres = self.dialect == "postgresql"
        self._user_ids: dict[str, int] = {}
        # SQLite: a few threads so that WAL readers run beside the one writer.
        self._threads = anyio.CapacityLimiter(4)
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        self._insert = insert
        self._inline: Connection | None = None  # SQLite: the loop thread's connection
        self._file: Path | None = None  # SQLite: the database file, and its identity
        self._identity: tuple[int, int] | None = None
        self._inline_commits = 0
        self._checkpointing: threading.Thread | None = None  # SQLite: the running checkpoint
        # Built once: constructing statements costs more than running them on SQLite.
        add = insert(usage_daily)
        self._add_usage = add.on_conflict_do_update(
            index_elements=["user_id", "day", "bot_uid", "model"],
            set_={c: usage_daily.c[c] + add.excluded[c] for c in (*USAGE_COUNTERS, "cost")},
        )

    @classmethod
    async def open(cls, url: str, *, echo: bool = False, lock_timeout: float = 15.0) -> Store:
        """Connect, and bring the schema up to date if it is behind."""
        given, url = url, normalize_url(url)
        database: anyio.Path | None = None  # SQLite's file
        engine: Engine | AsyncEngine
        where = _shown(url)
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if path and path != ":memory:":
                database = await anyio.Path(path).expanduser()
                folder = database.parent
                try:
                    await folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"Cannot create the folder {folder} for the database: {exc.strerror}. "
                        "Point CHINWAG_HOME (or store.url) at a folder you can write.",
                        where=where,
                    ) from None
            engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})
            event.listen(engine, "connect", partial(_sqlite_pragmas, lock_timeout))
        else:
            from sqlalchemy.ext.asyncio import create_async_engine

            engine = create_async_engine(
                url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True
            )
        store = cls(engine, where=where, lock_timeout=lock_timeout)
        store.url = given
        if database is not None:
            store._file = Path(database)
        try:
            await store._migrate()
            if not store.is_postgres:
                store._inline = cast(Engine, engine).connect()
                store._inline.exec_driver_sql("PRAGMA busy_timeout=0")
                store._inline.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
                store._inline.commit()
                store.check_file()  # remembers which file this is
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await store.close()
            if isinstance(exc, SQLAlchemyError):
                raise store._error(exc) from None
            raise
        return store

    async def close(self) -> None:
        if self.is_postgres:
            await cast("AsyncEngine", self.engine).dispose()
            return
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        if self._checkpointing is not None:
            await anyio.to_thread.run_sync(self._checkpointing.join)
        with contextlib.suppress(StoreError):  # a full disk must not stop the close
            await self._run(_checkpoint)
        await anyio.to_thread.run_sync(cast(Engine, self.engine).dispose, limiter=self._threads)

    async def _run(self, operation: Callable[[Connection], T]) -> T:
        """Run one operation as one transaction; wait out another program's lock for up to
        lock_timeout seconds; any database failure is a StoreError."""
        # SQLite's busy handler already waits inside an attempt: the clock starts now.
        started = time.monotonic()
        delay = 0.02
        while True:
            try:
                return await self._run_once(operation)
            except OperationalError as exc:
                if not _locked(exc):
                    raise self._error(exc) from None
                if time.monotonic() - started + delay >= self.lock_timeout:
                    raise self._error(exc) from None
            except SQLAlchemyError as exc:
                raise self._error(exc) from None
            await anyio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)

    async def _run_once(self, operation: Callable[[Connection], T]) -> T:
        if self.is_postgres:
            async with cast("AsyncEngine", self.engine).begin() as conn:
                return await conn.run_sync(operation)
        engine = cast(Engine, self.engine)

        def in_transaction() -> T:
            with engine.begin() as conn:
                return operation(conn)

        return await anyio.to_thread.run_sync(in_transaction, limiter=self._threads)

    async def _short(self, operation: Callable[[Connection], T]) -> T:
        """A short write, or a read by key, on a request's path: inline on SQLite unless
        the lock is taken (a hop to the worker thread costs more than the statement)."""
        inline = self._inline
        if inline is not None:
            try:
                with inline.begin():
                    result = operation(inline)
            except OperationalError as exc:
                if not _locked(exc):
                    raise self._error(exc) from None
            except SQLAlchemyError as exc:
                raise self._error(exc) from None
            else:
                self._inline_commits += 1
                if self._inline_commits % 256 == 0:
                    self._checkpoint_soon()
                return result
        return await self._run(operation)

    def _checkpoint_soon(self) -> None:
        """Checkpoint SQLite's WAL on a thread of its own. Awaited here, its fsyncs (about
        12 ms) landed on the one turn in 128 that made the count: the turns' p99.
        Durability is the same: a commit is in the WAL before it returns."""
        running = self._checkpointing
        if running is not None and running.is_alive():
            return
        engine = cast(Engine, self.engine)

        def checkpoint() -> None:
            try:
                with engine.begin() as conn:
                    _checkpoint(conn)
            except SQLAlchemyError as exc:  # the WAL only grows until the next one
                log.warning("could not checkpoint the database's WAL: %s", exc)

        self._checkpointing = threading.Thread(
            target=checkpoint, name="chinwag-checkpoint", daemon=True
        )
        self._checkpointing.start()

    def _error(self, exc: SQLAlchemyError) -> StoreError:
        """A database failure as one line that says what to do."""
        return store_error(exc, self.where, self.lock_timeout)

    # -- schema ---------------------------------------------------------------------------

    async def schema_revision(self) -> str | None:
        """The revision on disk, or None for an empty database."""
        return await self._run(_revision)

    def check_file(self) -> None:
        """A SQLite file deleted or replaced under an open store would take every write into
        the void: refuse, once per turn, before the question is stored."""
        if self._file is None:
            return
        try:
            found = self._file.stat()
        except OSError:
            found = None
        identity = (found.st_dev, found.st_ino) if found is not None else None
        if self._identity is None:
            self._identity = identity
        elif identity != self._identity:
            raise StoreError(
                f"The database file {self.where} was deleted or replaced while chinwag had it "
                "open, so nothing could be stored there: start chinwag again.",
                where=self.where,
            )

    async def _migrate(self) -> None:
        # Alembic costs ~0.5 s to import: load it only when the schema is behind.
        revision = await self.schema_revision()
        if revision == SCHEMA_REVISION:
            return
        if revision is not None and revision not in SCHEMA_REVISIONS:
            raise StoreError(
                f"The database {self.where} has schema {revision!r}, which this chinwag "
                f"(schema {SCHEMA_REVISION}) does not know: a newer chinwag wrote it. "
                "Upgrade chinwag, or point store.url at another database.",
                where=self.where,
            )
        await self._run(_upgrade)

    @contextlib.asynccontextmanager
    async def only_once(self, job: str) -> AsyncIterator[bool]:
        """Whether this process may run a background job now: on PostgreSQL, an advisory
        lock held for the job, so that of many workers only one runs it (the others get
        False); SQLite has one writer process, and always True."""
        if not self.is_postgres:
            yield True
            return
        number = int.from_bytes(hashlib.sha256(job.encode()).digest()[:8], "big", signed=True)
        engine = cast("AsyncEngine", self.engine)
        try:
            async with engine.connect() as conn:
                took = text("SELECT pg_try_advisory_lock(:n)")
                mine = bool((await conn.execute(took, {"n": number})).scalar())
                await conn.commit()
                try:
                    yield mine
                finally:
                    if mine:
                        with anyio.CancelScope(shield=True):
                            await conn.execute(text("SELECT pg_advisory_unlock(:n)"), {"n": number})
                            await conn.commit()
        except SQLAlchemyError as exc:
            raise self._error(exc) from None

    # -- users ----------------------------------------------------------------------------

    async def user_id(self, name: str, *, create: bool = True) -> int:
        """The id of the user with this name, created on first write. A read for a user
        that does not exist gets NO_USER, which owns nothing."""
        cached = self._user_ids.get(name)
        if cached is None:
            found = await self._run(partial(self._user_id, name, create))
            if found is None:
                return NO_USER
            cached = self._user_ids[name] = found
        return cached

    def _user_id(self, name: str, create: bool, conn: Connection) -> int | None:
        if create:
            stmt = self._insert(users).values(name=name, created_at=now())
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
        uid: int | None = conn.execute(select(users.c.id).where(users.c.name == name)).scalar()
        return uid

    # -- conversations --------------------------------------------------------------------

    async def thread(self, user_id: int, user: str, cid: str, *, spent: bool = False) -> Thread:
        """A conversation with its current branch (and what it cost, with `spent`)."""

        def load(conn: Connection) -> Thread:
            row = _conversation_row(conn, user_id, cid, spent=spent)
            rows = conn.execute(select(messages).where(messages.c.conversation_id == cid)).all()
            leaf = row.current_message_id
            busy = row.busy_until is not None and row.busy_until > now()
            files = _files_of(conn, cid)
            conversation = _conversation(row, user)
            return Thread(conversation, _branch(rows, leaf, files), leaf, rows, busy, files)

        return await self._run(load)

    async def conversation(self, user_id: int, user: str, cid: str) -> Conversation:
        return await self._run(
            lambda conn: _conversation(_conversation_row(conn, user_id, cid, spent=True), user)
        )

    async def list_conversations(
        self,
        user_id: int,
        user: str,
        *,
        limit: int = 50,
        offset: int = 0,
        query: str | None = None,
    ) -> list[Conversation]:
        """The user's conversations, newest activity first; with `query`, those whose title
        or any message holds it (case-insensitive)."""
        stmt = (
            _WITH_SPEND.where(conversations.c.user_id == user_id)
            .order_by(conversations.c.updated_at.desc(), conversations.c.id)
            .limit(limit)
            .offset(offset)
        )
        if query:
            escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
            said = select(messages.c.id).where(
                messages.c.conversation_id == conversations.c.id,
                messages.c.content.ilike(pattern, escape="\\"),
            )
            stmt = stmt.where(conversations.c.title.ilike(pattern, escape="\\") | said.exists())
        return await self._run(
            lambda conn: [_conversation(row, user) for row in conn.execute(stmt).all()]
        )

    async def create_conversation(
        self,
        user_id: int,
        user: str,
        *,
        bot_uid: str,
        system_prompt: str | None = None,
        title: str | None = None,
    ) -> Conversation:
        """An empty conversation, for turns to come."""
        stamp = now()
        values: dict[str, Any] = {
            "id": new_id(),
            "user_id": user_id,
            "bot_uid": bot_uid,
            "title": title,
            "system_prompt": system_prompt,
            "current_message_id": None,
            "created_at": stamp,
            "updated_at": stamp,
        }

        def write(conn: Connection) -> Conversation:
            conn.execute(_INSERT_CONVERSATION, values)
            return _conversation(_conversation_row(conn, user_id, values["id"]), user)

        return await self._run(write)

    async def delete_conversation(self, user_id: int, cid: str) -> None:
        """Delete a conversation of this user and all its messages."""

        def write(conn: Connection) -> None:
            _conversation_row(conn, user_id, cid)  # NotFoundError for anyone else's
            ids = select(messages.c.id).where(messages.c.conversation_id == cid)
            linked = select(_LINKS.sha256).where(_LINKS.message_id.in_(ids)).distinct()
            shas = list(conn.execute(linked).scalars())
            conn.execute(message_attachments.delete().where(_LINKS.message_id.in_(ids)))
            conn.execute(messages.delete().where(messages.c.conversation_id == cid))
            conn.execute(conversations.delete().where(conversations.c.id == cid))
            if shas:  # files nobody's message carries any more go with it
                unlinked = ~exists(select(_LINKS.sha256).where(_LINKS.sha256 == _BLOBS.sha256))
                conn.execute(attachment_blobs.delete().where(_BLOBS.sha256.in_(shas), unlinked))

        await self._run(write)

    async def rename_conversation(
        self,
        user_id: int,
        user: str,
        cid: str,
        title: str | None,
        *,
        only_if_untitled: bool = False,
    ) -> Conversation:
        """Set a conversation's title; with only_if_untitled, keep a title it already has."""

        def write(conn: Connection) -> Conversation:
            row = _conversation_row(conn, user_id, cid)
            if not (only_if_untitled and row.title):
                conn.execute(
                    conversations.update().where(conversations.c.id == cid).values(title=title)
                )
            return _conversation(_conversation_row(conn, user_id, cid, spent=True), user)

        return await self._run(write)

    async def set_system_prompt(
        self, user_id: int, user: str, cid: str, system_prompt: str | None
    ) -> Conversation:
        """Set (or with None, remove) a conversation's own system prompt."""

        def write(conn: Connection) -> Conversation:
            _conversation_row(conn, user_id, cid)  # NotFoundError for anyone else's
            conn.execute(
                conversations.update()
                .where(conversations.c.id == cid)
                .values(system_prompt=system_prompt)
            )
            return _conversation(_conversation_row(conn, user_id, cid, spent=True), user)

        return await self._run(write)

    async def show_branch(self, user_id: int, user: str, cid: str, message_id: str) -> Thread:
        """Make the branch through `message_id` the conversation's current one, down to its
        newest leaf; refused while a turn is answering in the conversation."""

        def write(conn: Connection) -> Thread:
            row = _conversation_row(conn, user_id, cid)  # NotFoundError for anyone else's
            rows = conn.execute(select(messages).where(messages.c.conversation_id == cid)).all()
            if not any(r.id == message_id for r in rows):
                raise NotFoundError(
                    f"No message {message_id!r} in conversation {cid!r} for this user: "
                    "its messages (?all=true) show the ids."
                )
            leaf = _newest_leaf(rows, message_id)
            stmt = conversations.update().where(conversations.c.id == cid, _FREE)
            if not conn.execute(stmt.values(current_message_id=leaf), {"stamp": now()}).rowcount:
                raise ConflictError(
                    "A turn is answering in this conversation now: switch branches once it "
                    "has finished."
                )
            files = _files_of(conn, cid)
            return Thread(
                _conversation(row, user), _branch(rows, leaf, files), leaf, rows, files=files
            )

        return await self._run(write)

    async def export_conversation(self, user_id: int, user: str, cid: str) -> dict[str, Any]:
        """The conversation with every message of every branch, as JSON-ready data."""
        thread = await self.thread(user_id, user, cid, spent=True)
        rows = sorted(thread.rows, key=lambda r: (r.created_at, r.id))
        return {
            "conversation": thread.conversation.model_dump(mode="json", exclude={"user"}),
            "current_message_id": thread.leaf_id,
            "messages": [
                _message(row, thread.files.get(row.id, ())).model_dump(mode="json") for row in rows
            ],
        }

    async def import_conversation(
        self,
        user_id: int,
        user: str,
        data: dict[str, Any],
        files: Mapping[str, bytes] | None = None,
    ) -> Conversation:
        """Store an exported conversation as it was: same ids, branches and timestamps; and
        the bytes of its messages' attachments, by sha256, from `files`."""
        conv = Conversation.model_validate({**data["conversation"], "user": user})
        msgs = [Message.model_validate(m) for m in data["messages"]]
        files = files or {}
        links: list[dict[str, Any]] = []
        for m in msgs:
            missing = next((f.name for f in m.attachments if f.sha256 not in files), None)
            if missing is not None:
                raise InputError(
                    f"Message {m.id!r} carries {missing}, whose bytes are not in the export's "
                    "files: the export is damaged."
                )
            _link(m.id, m.attachments, links)
        ids = {m.id for m in msgs}
        leaf = data.get("current_message_id")
        if leaf is not None and leaf not in ids:
            raise InputError(f"current_message_id {leaf!r} is not one of the messages.")
        parents = {m.id: m.parent_id for m in msgs}
        if len(parents) != len(msgs):
            raise InputError("Two messages of the export share an id: the export is damaged.")
        for m in msgs:
            if m.conversation_id != conv.id or (m.parent_id is not None and m.parent_id not in ids):
                raise InputError(f"Message {m.id!r} does not belong to this conversation's tree.")
        _refuse_cycles(parents)

        def write(conn: Connection) -> Conversation:
            exists = select(conversations.c.id).where(conversations.c.id == conv.id)
            taken = select(messages.c.id).where(messages.c.id.in_(ids)).limit(1)
            if conn.execute(exists).first() or (ids and conn.execute(taken).first()):
                # The same answer for anyone's ids: ownership is never revealed.
                raise ConflictError(
                    f"Conversation {conv.id!r} (or one of its messages) is already stored, so "
                    "it cannot be imported again; if it is your copy, delete it first."
                )
            conn.execute(
                _INSERT_CONVERSATION,
                {
                    "id": conv.id, "user_id": user_id, "bot_uid": conv.bot, "title": conv.title,
                    "system_prompt": conv.system_prompt, "current_message_id": leaf,
                    "created_at": conv.created_at, "updated_at": conv.updated_at,
                },
            )  # fmt: skip
            if msgs:
                conn.execute(_INSERT_MESSAGE, [_message_row(m) for m in msgs])
            _store_files(conn, self._insert, links, files)
            return _conversation(_conversation_row(conn, user_id, conv.id, spent=True), user)

        return await self._run(write)

    async def find_message(self, user_id: int, message_id: str) -> str:
        """The conversation id of this user's message; NotFoundError for anyone else's."""
        stmt = (
            select(messages.c.conversation_id)
            .join(conversations, conversations.c.id == messages.c.conversation_id)
            .where(messages.c.id == message_id, conversations.c.user_id == user_id)
        )
        cid = await self._run(lambda conn: conn.execute(stmt).scalar())
        if cid is None:
            raise NotFoundError(
                f"No message {message_id!r} for this user. `conversations.history(id)` shows "
                "the ids of a conversation's messages."
            )
        return str(cid)

    # -- attachments ----------------------------------------------------------------------

    async def blobs(self, user_id: int, shas: Collection[str]) -> dict[str, bytes]:
        """The bytes of files attached to this user's messages, by sha256."""
        wanted = sorted(shas)
        stmt = select(_BLOBS.sha256, _BLOBS.data).where(_BLOBS.sha256.in_(wanted), _owned(user_id))
        found = {sha: bytes(data) for sha, data in await self._run(lambda c: c.execute(stmt).all())}
        missing = [sha for sha in wanted if sha not in found]
        if missing:
            raise StoreError(
                f"The attachment {missing[0]} is missing from the database {self.where}: was "
                "it changed by hand?",
                where=self.where,
            )
        return found

    async def attachment(self, user_id: int, sha256: str) -> tuple[Attachment, bytes]:
        """A file attached to one of this user's messages: how it was attached (the first
        link found, for a file attached more than once) and its bytes."""
        stmt = (
            select(_LINKS.name, _LINKS.media_type, _BLOBS.size, _BLOBS.data)
            .select_from(_OWN_LINKS.join(attachment_blobs, _BLOBS.sha256 == _LINKS.sha256))
            .where(_LINKS.sha256 == sha256, conversations.c.user_id == user_id)
            .limit(1)
        )
        row = await self._run(lambda conn: conn.execute(stmt).first())
        if row is None:
            # Another user's file reads exactly like a missing one.
            raise NotFoundError(
                f"No attachment {sha256!r} for this user: a message's attachments (history) "
                "show their sha256."
            )
        info = Attachment(name=row.name, media_type=row.media_type, size=row.size, sha256=sha256)
        return info, bytes(row.data)

    # -- turns ----------------------------------------------------------------------------

    async def start_turn(
        self,
        *,
        user_id: int,
        conversation_id: str | None,
        parent_id: str | None,
        expected: str | None,
        branch: bool,
        until: datetime,
        bot_uid: str,
        system_prompt: str | None,
        seed: Sequence[tuple[str, str, Sequence[Attachment]]],
        prompt: str,
        meta: dict[str, Any] | None = None,
        files: Sequence[Attachment] = (),
        data: Mapping[str, bytes] | None = None,
        title: str | None = None,
    ) -> tuple[str, str, bool] | None:
        """Store the user's message (and the conversation if new) before the model is called.

        The turn takes the conversation (moves it to the question and holds it until
        `until`) only if it is still at `expected` and no other turn holds it. Otherwise
        nothing is written and None is returned, unless `branch` is set: then the question
        is stored on a branch of its own, and the conversation stays as it is.
        Each message's files are stored with it: `data` holds their bytes, by sha256.
        Returns the conversation id, the question's id and whether the turn took it.
        """
        stamp = now()
        cid = conversation_id or new_id()
        rows: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        for role, content, attached in [*seed, ("user", prompt, files)]:
            mid = new_id()
            rows.append(
                {
                    "id": mid, "conversation_id": cid, "parent_id": parent_id, "role": role,
                    "content": content, "status": "complete", "meta": None, "created_at": stamp,
                }
            )  # fmt: skip
            _link(mid, attached, links)
            parent_id = mid
        question_id = rows[-1]["id"]
        rows[-1]["meta"] = meta or None
        self.check_file()

        def write(conn: Connection) -> bool | None:
            moved = True
            if conversation_id is None:
                conn.execute(
                    _INSERT_CONVERSATION,
                    {
                        "id": cid, "user_id": user_id, "bot_uid": bot_uid, "title": title,
                        "system_prompt": system_prompt, "current_message_id": question_id,
                        "created_at": stamp, "updated_at": stamp, "busy_until": until,
                    },
                )  # fmt: skip
            else:
                moved = _move(conn, cid, expected, question_id, stamp, until, take=True)
                if not moved and not branch:
                    return None
                if title is not None:  # an empty conversation's first question
                    conn.execute(
                        conversations.update()
                        .where(conversations.c.id == cid, conversations.c.title.is_(None))
                        .values(title=title)
                    )
            conn.execute(_INSERT_MESSAGE, rows)
            _store_files(conn, self._insert, links, data or {})
            return moved

        # Files can be megabytes: written on a worker thread, never on the event loop's.
        moved = await (self._run(write) if links else self._short(write))
        return None if moved is None else (cid, question_id, moved)

    async def open_answer(
        self,
        *,
        conversation_id: str,
        parent_id: str,
        expected: str | None,
        until: datetime,
        model: str,
        content: str,
    ) -> tuple[str, bool]:
        """Store an answer that is still streaming, marked partial until it is finished, so
        that a crash keeps what was shown. Its id, and whether the conversation moved to it."""
        stamp = now()
        mid = new_id()
        row = {
            "id": mid, "conversation_id": conversation_id, "parent_id": parent_id,
            "role": "assistant", "content": content, "status": "partial",
            "error": DRAFT_ERROR, "model": model, "meta": None, "created_at": stamp,
        }  # fmt: skip

        def write(conn: Connection) -> bool:
            moved = _move(conn, conversation_id, expected, mid, stamp, until)  # or NotFound
            conn.execute(_INSERT_MESSAGE, row)
            return moved

        return mid, await self._short(write)

    async def save_draft(
        self, message_id: str, content: str, *, conversation_id: str, until: datetime
    ) -> None:
        """The streaming answer's text so far (a finished answer is never overwritten), and
        the turn's hold on its conversation renewed."""
        renew = {"cid": conversation_id, "expected": message_id, "until": until}

        def write(conn: Connection) -> None:
            conn.execute(_SAVE_DRAFT, {"mid": message_id, "content": content})
            conn.execute(_RENEW_LEASE, renew)

        await self._short(write)

    async def claim(self, conversation_id: str, *, expected: str | None, until: datetime) -> bool:
        """Take a conversation for a turn that adds no question (a retry): only if it is
        still at `expected` and no other turn holds it."""
        return await self._short(
            lambda conn: (
                _move(conn, conversation_id, expected, expected or "", now(), until, take=True)
                if expected is not None
                else False
            )
        )

    async def release(self, conversation_id: str, *, head: str) -> None:
        """Stop holding the conversation (a turn that could not record its answer)."""
        release = {"cid": conversation_id, "expected": head, "until": None}
        await self._short(lambda conn: conn.execute(_RENEW_LEASE, release))

    async def busy(self, conversation_id: str) -> bool:
        """Whether a turn is answering in the conversation now (its lease has not run out)."""
        stmt = select(conversations.c.busy_until).where(conversations.c.id == conversation_id)
        until = await self._run(lambda conn: conn.execute(stmt).scalar())
        return until is not None and until > now()

    async def renew(self, conversation_id: str, *, head: str, until: datetime) -> None:
        """Hold the conversation longer, while the turn is still where it left it."""
        renew = {"cid": conversation_id, "expected": head, "until": until}
        await self._short(lambda conn: conn.execute(_RENEW_LEASE, renew))

    async def add_messages(
        self,
        conversation_id: str,
        parent_id: str,
        items: Sequence[tuple[Role, str, dict[str, Any]]],
        *,
        expected: str | None,
        until: datetime,
        replace: str | None = None,
    ) -> tuple[str, bool]:
        """Append messages (a tool call and its results) in a chain; `replace` is a draft
        that becomes the first of them. The last one's id, and whether the conversation
        moved to it (from `expected`)."""
        stamp = now()
        rows: list[dict[str, Any]] = []
        for role, content, meta in items:
            mid = replace if replace is not None and not rows else new_id()
            rows.append(
                {
                    "id": mid, "conversation_id": conversation_id, "parent_id": parent_id,
                    "role": role, "content": content, "status": "complete", "error": None,
                    "meta": meta, "created_at": stamp,
                }
            )  # fmt: skip
            parent_id = mid

        def write(conn: Connection) -> bool:
            inserts = rows
            if replace is not None:
                first = rows[0]
                conn.execute(
                    messages.update()
                    .where(messages.c.id == replace)
                    .values(content=first["content"], status="complete", error=None,
                            meta=first["meta"])
                )  # fmt: skip
                inserts = rows[1:]
            moved = _move(conn, conversation_id, expected, parent_id, stamp, until)
            if inserts:
                conn.execute(_INSERT_MESSAGE, inserts)
            return moved

        moved = await self._run(write)
        return parent_id, moved

    async def finish_turn(
        self,
        *,
        user_id: int,
        conversation_id: str,
        parent_id: str,
        expected: str | None,
        answer_id: str | None,
        bot_uid: str,
        model: str,
        content: str,
        status: Status,
        error: str | None,
        usage: Usage,
        meta: dict[str, Any] | None = None,
    ) -> tuple[str, bool]:
        """Store the answer (finishing its draft, if it has one), move the conversation to it
        if it is still at `expected`, and add its usage to the rollup. Its id, and whether
        the conversation moved."""
        stamp = now()
        mid = answer_id or new_id()
        answer = {
            "content": content,
            "status": status,
            "error": error,
            "model": model,
            "usage_estimated": usage.estimated,
            "meta": meta,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "prompt_words": usage.prompt_words,
            "completion_words": usage.completion_words,
            "cost": usage.cost,
        }
        rollup = _rollup(user_id, stamp.date(), bot_uid, model, usage, status)

        def write(conn: Connection) -> bool:
            moved = _move(conn, conversation_id, expected, mid, stamp, None)  # and released
            if answer_id is not None:
                update = messages.update().where(messages.c.id == mid).values(**answer)
                if not conn.execute(update).rowcount:
                    raise _deleted()
            else:
                conn.execute(
                    _INSERT_MESSAGE,
                    {
                        **answer, "id": mid, "conversation_id": conversation_id,
                        "parent_id": parent_id, "role": "assistant", "created_at": stamp,
                    },
                )  # fmt: skip
            conn.execute(self._add_usage, rollup)
            return moved

        return mid, await self._short(write)

    async def count_usage(
        self, user_id: int, bot_uid: str, model: str, usage: Usage, status: Status
    ) -> None:
        """Add a turn that was not kept to the usage rollup."""
        rollup = _rollup(user_id, now().date(), bot_uid, model, usage, status)
        await self._short(lambda conn: conn.execute(self._add_usage, rollup))

    # -- bots -----------------------------------------------------------------------------

    async def list_bots(self, user_id: int) -> list[Bot]:
        """The bots this user saved, by name."""
        stmt = select(bots.c.data).where(bots.c.user_id == user_id).order_by(bots.c.name)
        rows = await self._run(lambda conn: conn.execute(stmt).scalars().all())
        return [Bot.model_validate(data) for data in rows]

    async def save_bot(self, user_id: int, bot: Bot, *, new: bool = False) -> None:
        """Insert or replace one of this user's bots; `new` refuses a uid that is taken."""
        stamp = now()
        values = {
            "uid": bot.uid,
            "user_id": user_id,
            "slug": bot.slug,
            "name": bot.name,
            "data": bot.model_dump(mode="json"),
            "updated_at": stamp,
        }

        def write(conn: Connection) -> None:
            where = (bots.c.uid == bot.uid) & (bots.c.user_id == user_id)
            if not new and conn.execute(bots.update().where(where).values(**values)).rowcount:
                return
            # Whoever has the uid, the answer is the same: ownership is never revealed.
            if conn.execute(select(bots.c.uid).where(bots.c.uid == bot.uid)).first():
                raise ConflictError(
                    f"The bot uid {bot.uid!r} is taken: leave uid out to get a new one."
                )
            conn.execute(bots.insert().values(**values, created_at=stamp))

        await self._run(write)

    async def delete_bot(self, user_id: int, uid: str) -> bool:
        """Delete one of this user's bots; False if there was none."""
        stmt = bots.delete().where(bots.c.uid == uid, bots.c.user_id == user_id)
        return bool(await self._run(lambda conn: conn.execute(stmt).rowcount))

    # -- usage ----------------------------------------------------------------------------

    async def usage_by_day(
        self,
        user_id: int,
        start: date,
        end: date,
        *,
        bot_uid: str | None = None,
        model: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """Per day in [start, end]: the USAGE_COUNTERS (requests, errors, tokens in/out,
        words in/out, unpriced requests), then the known costs added up; one bot's or one
        model's only, if given."""
        c = usage_daily.c
        stmt = (
            select(c.day, *(func.sum(c[name]) for name in (*USAGE_COUNTERS, "cost")))
            .where(c.user_id == user_id, c.day >= start, c.day <= end)
            .group_by(c.day)
            .order_by(c.day)
        )
        if bot_uid is not None:
            stmt = stmt.where(c.bot_uid == bot_uid)
        if model is not None:
            stmt = stmt.where(c.model == model)
        return await self._run(lambda conn: [tuple(row) for row in conn.execute(stmt).all()])


def _rollup(
    user_id: int, day: date, bot_uid: str, model: str, usage: Usage, status: Status
) -> dict[str, Any]:
    """One turn's row for the daily rollup: added to the day's, bot's and model's row."""
    return {
        "user_id": user_id, "day": day, "bot_uid": bot_uid, "model": model,
        "requests": 1, "errors": 0 if status == "complete" else 1,
        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
        "prompt_words": usage.prompt_words, "completion_words": usage.completion_words,
        "unpriced": 1 if usage.cost is None else 0, "cost": usage.cost or 0.0,
    }  # fmt: skip


def _revision(conn: Connection) -> str | None:
    # A savepoint keeps PostgreSQL's transaction usable when the table is missing.
    try:
        with conn.begin_nested():
            revision: str | None = conn.execute(
                text("SELECT version_num FROM alembic_version")
            ).scalar()
            return revision
    except (OperationalError, ProgrammingError):
        return None


def _checkpoint(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def _sqlite_pragmas(lock_timeout: float, dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside a writer; NORMAL sync is durable across app crashes in WAL.
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        f"busy_timeout={int(lock_timeout * 1000)}",
        "foreign_keys=ON",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _shown(url: str) -> str:
    """Where the database is, for messages: a SQLite file's path, or the URL sans password."""
    if url.startswith("sqlite"):
        return url.split(":///", 1)[1] if ":///" in url else "(in memory)"
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _locked(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text


def store_error(exc: SQLAlchemyError, where: str, lock_timeout: float) -> StoreError:
    """What a database failure means for the user, in one line, without SQL."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    low = text.lower()
    if isinstance(exc, OperationalError) and _locked(exc):
        message = (
            f"The database {where} stayed locked by another program for {lock_timeout:g} s. "
            "Let the other chinwag finish (or close it), or raise store.lock_timeout."
        )
    elif "disk is full" in low or "no space" in low or "database or disk is full" in low:
        message = f"The disk holding the database {where} is full: free some space and retry."
    elif "disk i/o error" in low:
        message = (
            f"The database {where} could not be written (disk I/O error): the disk may be "
            "full or failing, or a file size limit was reached. Free some space and retry."
        )
    elif "not a database" in low or "malformed" in low or "file is encrypted" in low:
        message = (
            f"{where} is not a database chinwag can read (damaged, or another kind of file). "
            "Move it away and chinwag starts a new one, or point store.url elsewhere."
        )
    elif "unable to open database" in low:
        message = (
            f"Cannot open the database {where}: is it a folder, or in a folder you cannot "
            "write? Point CHINWAG_HOME (or store.url) at a writable place."
        )
    elif "readonly" in low or "read-only" in low:
        message = f"The database {where} is read-only: make it writable, or move it away."
    elif isinstance(exc, IntegrityError):
        message = f"The database {where} refused a conflicting write ({text[:200]})."
    else:
        message = f"The database {where} failed: {text[:200]}."
    return StoreError(message, where=where)


def migrations(conn: Connection | None = None) -> AlembicConfig:
    """Alembic's config for chinwag's migrations, run on `conn` (tests run them by hand)."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def _upgrade(conn: Connection) -> None:
    from alembic import command

    command.upgrade(migrations(conn), "head")


__all__ = ["Store", "Thread", "normalize_url"]
