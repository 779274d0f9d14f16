"""The store, on a SQLite file and on a real PostgreSQL server."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chinwag.errors import ConfigError, NotFoundError
from chinwag.store import Store, normalize_url
from chinwag.store.schema import SCHEMA_REVISION
from chinwag.types import Usage

pytestmark = pytest.mark.anyio


async def _turn(
    store: Store, user_id: int, prompt: str, answer: str, cid: str | None = None
) -> str:
    parent = None
    if cid is not None:
        parent = (await store.thread(user_id, "u", cid)).leaf_id
    started = await store.start_turn(
        user_id=user_id,
        conversation_id=cid,
        parent_id=parent,
        expected=parent,
        branch=False,
        bot_uid="bot-1",
        system_prompt=None,
        seed=[],
        prompt=prompt,
    )
    assert started is not None
    cid, mid, moved = started
    assert moved
    await store.finish_turn(
        user_id=user_id,
        conversation_id=cid,
        parent_id=mid,
        expected=mid,
        answer_id=None,
        bot_uid="bot-1",
        model="m",
        content=answer,
        status="complete",
        error=None,
        usage=Usage(prompt_tokens=10, completion_tokens=5, prompt_words=3, completion_words=2),
    )
    return cid


async def test_open_migrates_an_empty_database_to_head(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        assert await store.schema_revision() == SCHEMA_REVISION
    finally:
        await store.close()
    # Opening again finds the schema current and keeps working.
    store = await Store.open(store_url)
    try:
        assert await store.user_id("alice") == await store.user_id("alice")
    finally:
        await store.close()


def test_schema_revision_constant_is_alembic_head() -> None:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    import chinwag.store.store as module

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(module.__file__).parent / "migrations"))
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_REVISION


def test_a_current_schema_does_not_load_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    code = (
        "import anyio, sys\n"
        "from chinwag.store import Store\n"
        f"async def main():\n    s = await Store.open({url!r})\n    await s.close()\n"
        "anyio.run(main)\n"
        "print('alembic' in sys.modules)\n"
    )
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    second = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert first.stdout.strip() == "True"  # the empty file needed migrating
    assert second.stdout.strip() == "False"


async def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    await store.close()
    import sqlite3

    with sqlite3.connect(tmp_path / "w.db") as conn:  # WAL is a property of the file
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_turns_history_and_listing(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        uid = await store.user_id("alice")
        first = await _turn(store, uid, "hello", "hi there")
        await _turn(store, uid, "and again", "once more", first)
        second = await _turn(store, uid, "other", "thread")
        history = (await store.thread(uid, "alice", first)).messages
        assert [(m.role, m.content) for m in history] == [
            ("user", "hello"),
            ("assistant", "hi there"),
            ("user", "and again"),
            ("assistant", "once more"),
        ]
        assert history[1].usage == Usage(
            prompt_tokens=10, completion_tokens=5, prompt_words=3, completion_words=2
        )
        assert history[0].usage is None
        assert history[1].parent_id == history[0].id
        assert all(m.created_at.tzinfo is not None for m in history)
        listed = await store.list_conversations(uid, "alice")
        assert [c.id for c in listed] == [second, first]  # newest first
        assert [c.id for c in await store.list_conversations(uid, "alice", limit=1, offset=1)] == [
            first
        ]
        assert await store.latest_conversation_id(uid) == second
    finally:
        await store.close()


async def test_rollup_accumulates_per_day(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        uid = await store.user_id("alice")
        await _turn(store, uid, "one", "a")
        await _turn(store, uid, "two", "b")
        today = datetime.now(UTC).date()
        rows = await store.usage_by_day(uid, today - timedelta(days=1), today)
        assert rows == [(today, 2, 0, 20, 10, 6, 4)]
        other = await store.user_id("bob")
        assert await store.usage_by_day(other, today, today) == []
    finally:
        await store.close()


async def test_another_users_conversation_is_not_found(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        alice = await store.user_id("alice")
        bob = await store.user_id("bob")
        cid = await _turn(store, alice, "secret", "kept")
        with pytest.raises(NotFoundError):
            await store.thread(bob, "bob", cid)
        with pytest.raises(NotFoundError):
            await store.conversation(bob, "bob", cid)
        assert await store.list_conversations(bob, "bob") == []
    finally:
        await store.close()


def test_store_urls_are_normalized_or_refused() -> None:
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    assert normalize_url("sqlite+aiosqlite:///x.db") == "sqlite:///x.db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(ConfigError, match=r"store\.url"):
        normalize_url("mysql://u@h/db")


async def test_a_locked_sqlite_file_neither_blocks_the_loop_nor_loses_the_turn(
    tmp_path: Path,
) -> None:
    import sqlite3

    import anyio

    path = tmp_path / "locked.db"
    store = await Store.open(f"sqlite:///{path}")
    try:
        uid = await store.user_id("alice")
        other = sqlite3.connect(path, isolation_level=None)  # another process's writer
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await anyio.sleep(0.01)

        async def release_later() -> None:
            await anyio.sleep(0.5)
            other.execute("COMMIT")

        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat)
            tg.start_soon(release_later)
            cid = await _turn(store, uid, "waited for the lock", "and got stored")
            tg.cancel_scope.cancel()
        other.close()
        assert ticks >= 20  # the loop kept running while the write waited
        history = (await store.thread(uid, "alice", cid)).messages
        assert [m.content for m in history] == ["waited for the lock", "and got stored"]
    finally:
        await store.close()


async def test_an_older_schema_is_migrated_on_open_and_keeps_its_data(store_url: str) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import create_engine, text

    import chinwag.store.store as module

    sync_url = normalize_url(store_url)
    engine = create_engine(sync_url)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(module.__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")  # the first release's schema
        conn.execute(text("INSERT INTO users (name, created_at) VALUES ('old', '2026-01-01')"))
    engine.dispose()
    store = await Store.open(store_url)
    try:
        assert await store.schema_revision() == SCHEMA_REVISION
        uid = await store.user_id("old")
        cid = await _turn(store, uid, "after the upgrade", "still works")
        history = (await store.thread(uid, "old", cid)).messages
        assert [m.meta for m in history] == [{}, {}]
    finally:
        await store.close()
