"""The store, on a SQLite file and on a real PostgreSQL server."""

from __future__ import annotations

import resource
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chinwag import Client
from chinwag.errors import ConfigError, NotFoundError, StoreError
from chinwag.store import Store, normalize_url
from chinwag.store.schema import SCHEMA_REVISION, SCHEMA_REVISIONS
from chinwag.types import Usage
from tests.conftest import PNG, Runner, make_config
from tests.fake_openai import FakeOpenAI, Script

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
        until=datetime.now(UTC) + timedelta(seconds=10),
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
    from alembic.script import ScriptDirectory

    from chinwag.store.store import migrations

    scripts = ScriptDirectory.from_config(migrations())
    assert scripts.get_current_head() == SCHEMA_REVISION
    history = [rev.revision for rev in scripts.walk_revisions()]
    assert tuple(reversed(history)) == SCHEMA_REVISIONS


def test_a_database_from_a_newer_chinwag_is_one_line(run: Runner, home: Path) -> None:
    assert run("hello").returncode == 0
    db = sqlite3.connect(home / "chinwag.db")
    with db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    db.close()
    out = run("hello again")
    assert out.returncode == 1
    assert "a newer chinwag wrote it" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


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
        assert rows == [(today, 2, 0, 20, 10, 6, 4, 2, 0.0)]  # unpriced: 2, no known cost
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
    from sqlalchemy import create_engine, text

    from chinwag.store.store import migrations

    engine = create_engine(normalize_url(store_url))
    with engine.begin() as conn:
        command.upgrade(migrations(conn), "0001")  # the first release's schema
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


# -- when the database fails: one clear StoreError, and nothing shown is lost ----------------


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another program holding the SQLite file's write lock."""
    db = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    db.execute("BEGIN IMMEDIATE")
    return db


def test_a_lock_held_past_the_timeout_is_a_store_error(server: FakeOpenAI, home: Path) -> None:
    config = make_config(server, **{"store.lock_timeout": 0.5})
    with Client(config) as client:
        client.ask("create the file")
        holder = _hold_write_lock(home / "chinwag.db")
        try:
            with pytest.raises(StoreError, match=r"locked by another program for 0\.5 s"):
                client.ask("blocked")
        finally:
            holder.close()
        assert len(client.conversations.list()) == 1


def test_a_lock_released_within_the_timeout_is_waited_for(server: FakeOpenAI, home: Path) -> None:
    with Client(make_config(server)) as client:
        client.ask("create the file")
        holder = _hold_write_lock(home / "chinwag.db")
        threading.Timer(1.0, holder.close).start()
        assert client.ask("waits").text == "You said: waits"


def test_a_streamed_answer_that_cannot_be_stored_stays_with_the_caller(
    server: FakeOpenAI, home: Path
) -> None:
    config = make_config(server, **{"store.lock_timeout": 0.3})
    with Client(config) as client:
        client.ask("create the file")
        server.script(Script(text="one two three four five six", chunk_delay=0.05))
        stream = iter(client.stream("count"))
        next(stream)  # the question is stored and the answer has begun
        holder = _hold_write_lock(home / "chinwag.db")
        with pytest.raises(StoreError) as caught:
            list(stream)
        holder.close()
        partial = caught.value.partial
        assert partial is not None
        assert (partial.text, partial.message_id) == ("one two three four five six", None)
        assert len(str(caught.value).splitlines()) == 1
        # The question was stored before the lock; the answer's first words were saved.
        history = client.conversations.history(partial.conversation_id)
        assert history[0].content == "count"


@pytest.mark.parametrize("damage", ["garbage", "directory", "home is a file"])
def test_a_damaged_database_is_one_line_that_says_what_to_do(
    run: Runner, home: Path, damage: str
) -> None:
    if damage == "home is a file":
        home.parent.mkdir(parents=True, exist_ok=True)
        home.write_text("not a folder")
        expected = "Cannot create the folder"
    else:
        home.mkdir(parents=True)
        if damage == "garbage":
            (home / "chinwag.db").write_bytes(b"this is not SQLite\n" * 1000)
            expected = "not a database chinwag can read"
        else:
            (home / "chinwag.db").mkdir()
            expected = "Cannot open the database"
    out = run("hello")
    assert out.returncode == 1
    assert out.stderr.startswith("chinwag: ")
    assert expected in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_full_disk_is_one_line(run: Runner, home: Path) -> None:
    assert run("make the database").returncode == 0
    size = sum(f.stat().st_size for f in home.glob("chinwag.db*"))
    limit = size + 64 * 1024

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-m", "chinwag"], input="x" * 2_000_000,
        capture_output=True, text=True, env=run.env, timeout=60, preexec_fn=small_disk,
    )  # fmt: skip
    assert done.returncode == 1
    assert "could not be written" in done.stderr or "is full" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# -- two turns into one conversation at once --------------------------------------------------


def _check_tree(client: Client, cid: str, replies: int) -> list[str]:
    """Every stored question has one answer under it, the current branch alternates, and
    every reply is on it or says it went on a branch of its own. The branch's answers."""
    import json

    exported = json.loads(client.conversations.export(cid))
    by_id = {m["id"]: m for m in exported["messages"]}
    children: dict[str | None, list[dict[str, object]]] = {}
    for m in exported["messages"]:
        children.setdefault(m["parent_id"], []).append(m)
    questions = [m for m in exported["messages"] if m["role"] == "user"]
    assert len(questions) == replies + 1
    for q in questions:
        assert [c["role"] for c in children.get(q["id"], [])] == ["assistant"], q["content"]
    for m in exported["messages"]:
        if m["role"] == "assistant":
            assert by_id[m["parent_id"]]["role"] == "user"
    history = client.conversations.history(cid)
    roles = [m.role for m in history]
    assert roles == ["user", "assistant"] * (len(roles) // 2)
    return [m.id for m in history if m.role == "assistant"]


def test_threads_asking_into_one_conversation_never_interleave(
    server: FakeOpenAI, store_url: str
) -> None:
    server.default = Script(chunk_delay=0.002)
    with Client(make_config(server, **{"store.url": store_url})) as client:
        cid = client.ask("start").conversation_id
        replies = []
        lock = threading.Lock()

        def asker(n: int) -> None:
            for i in range(10):
                reply = client.ask(f"q{n}.{i}", conversation=cid)
                with lock:
                    replies.append(reply)

        threads = [threading.Thread(target=asker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(replies) == 80
        on_branch = set(_check_tree(client, cid, 80))
        for reply in replies:
            assert reply.branched == (reply.message_id not in on_branch)


def test_processes_asking_into_one_conversation_never_interleave(
    server: FakeOpenAI, store_url: str, home: Path
) -> None:
    config = make_config(server, **{"store.url": store_url})
    with Client(config) as client:
        cid = client.ask("start").conversation_id
    code = f"""
import sys, chinwag
config = chinwag.Config({{"store.url": {store_url!r}, "titles": False,
    "providers.openai.base_url": {server.base_url!r}, "providers.openai.model": "m"}})
with chinwag.Client(config) as client:
    for i in range(15):
        r = client.ask(f"{{sys.argv[1]}}.{{i}}", conversation={cid!r})
        print(r.message_id, r.branched, flush=True)
"""
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(n)], stdout=subprocess.PIPE, text=True)
        for n in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    lines = [line.split() for out in outputs for line in out.splitlines()]
    assert len(lines) == 45
    with Client(config) as client:
        on_branch = set(_check_tree(client, cid, 45))
    for message_id, branched in lines:
        assert (branched == "True") == (message_id not in on_branch)


def test_a_nul_from_the_model_or_a_tool_is_stored_on_every_database(
    server: FakeOpenAI, store_url: str
) -> None:
    def echo(text: str) -> str:
        """Echo text."""
        return "head\x00tail"

    server.script(
        Script(text="ans\x00wer"),
        Script(text="", tool_calls=[{"id": "c1", "name": "echo", "arguments": '{"text": "x"}'}]),
        Script(text="done"),
    )
    with Client(make_config(server, **{"store.url": store_url})) as client:
        reply = client.ask("hi")
        assert reply.text == "ans\ufffdwer"
        client.ask("use the tool", conversation=reply.conversation_id, tools=[echo])
        history = client.conversations.history(reply.conversation_id)
    assert history[1].content == "ans\ufffdwer"
    assert [m.content for m in history if m.role == "tool"] == ["head\ufffdtail"]


def test_a_conversation_deleted_mid_answer_says_so(server: FakeOpenAI, store_url: str) -> None:
    server.script(Script(text=" ".join(f"w{i}" for i in range(60)), chunk_delay=0.01))
    with Client(make_config(server, **{"store.url": store_url})) as client:
        stream = iter(client.stream("count"))
        first = next(stream)
        cid = client.conversations.list()[0].id
        client.conversations.delete(cid)
        with pytest.raises(NotFoundError, match="deleted while chinwag was answering") as caught:
            list(stream)
        partial = caught.value.partial
        assert partial is not None
        assert partial.message_id is None
        assert partial.text.startswith(first)
        assert client.conversations.list() == []
        assert client.stats.day().requests == 0  # nothing was stored, nothing counted


def test_a_database_file_deleted_under_an_open_client_is_an_error(
    server: FakeOpenAI, home: Path
) -> None:
    with Client(make_config(server)) as client:
        client.ask("first")
        for path in home.glob("chinwag.db*"):
            path.unlink()
        with pytest.raises(StoreError, match="deleted or replaced"):
            client.ask("second")


async def test_show_branch_goes_down_to_the_newest_answer_for_its_owner_only(
    store_url: str,
) -> None:
    store = await Store.open(store_url)
    try:
        alice = await store.user_id("alice")
        bob = await store.user_id("bob")
        cid = await _turn(store, alice, "question", "first answer")
        thread = await store.thread(alice, "alice", cid)
        question, first = thread.messages
        # A second answer to the same question (what a retry stores), now the current one.
        await store.finish_turn(
            user_id=alice, conversation_id=cid, parent_id=question.id, expected=first.id,
            answer_id=None, bot_uid="bot-1", model="m", content="second answer",
            status="complete", error=None, usage=Usage(),
        )  # fmt: skip
        assert (await store.thread(alice, "alice", cid)).messages[-1].content == "second answer"
        shown = await store.show_branch(alice, "alice", cid, first.id)
        assert [m.content for m in shown.messages] == ["question", "first answer"]
        assert (await store.thread(alice, "alice", cid)).leaf_id == first.id
        # From the question, the newest answer below it.
        back = await store.show_branch(alice, "alice", cid, question.id)
        assert back.messages[-1].content == "second answer"
        with pytest.raises(NotFoundError):
            await store.show_branch(bob, "bob", cid, first.id)
        other = await _turn(store, bob, "bob's", "own")
        with pytest.raises(NotFoundError):  # his conversation, her message
            await store.show_branch(bob, "bob", other, first.id)
        assert (await store.thread(alice, "alice", cid)).messages[-1].content == "second answer"
    finally:
        await store.close()


async def test_web_sessions_are_stored_hashed_and_end(store_url: str) -> None:
    from chinwag.accounts import digest
    from chinwag.store.accounts import AccountStore

    store = await Store.open(store_url)
    try:
        tables = AccountStore(store)
        stamp = datetime.now(UTC)
        await tables.add_user("alice", admin=False, stamp=stamp)
        values = {"id": "key_0123456789abcdef", "name": None, "hash": digest("cw-k"),
                  "prefix": "cw-k", "created_at": stamp}  # fmt: skip
        await tables.create_key(values, "alice")
        holder = await tables.holder(digest("cw-k"))
        assert holder is not None
        hour = timedelta(hours=1)
        await tables.open_session(digest("s1"), holder, stamp=stamp, expires=stamp + hour)
        await tables.open_session(digest("old"), holder, stamp=stamp - hour, expires=stamp)
        found = await tables.session(digest("s1"), datetime.now(UTC))
        assert found is not None
        assert (found.user, found.key_id) == ("alice", holder.key_id)
        assert await tables.session(digest("old"), datetime.now(UTC)) is None  # expired
        assert await tables.session(digest("s2"), datetime.now(UTC)) is None
        await tables.end_session(digest("s1"))
        assert await tables.session(digest("s1"), datetime.now(UTC)) is None
    finally:
        await store.close()


# -- attachments: content-addressed, each user's own ------------------------------------------


def test_the_same_file_is_stored_once_and_reached_by_its_owners_only(
    server: FakeOpenAI, store_url: str
) -> None:
    import hashlib

    from sqlalchemy import create_engine, text

    def stored() -> tuple[int, int]:
        """Blobs and links, as the database holds them."""
        engine = create_engine(normalize_url(store_url))
        try:
            with engine.connect() as conn:
                blobs = conn.execute(text("SELECT count(*) FROM attachment_blobs")).scalar()
                links = conn.execute(text("SELECT count(*) FROM message_attachments")).scalar()
        finally:
            engine.dispose()
        return int(blobs or 0), int(links or 0)

    sha = hashlib.sha256(PNG).hexdigest()
    with Client(make_config(server, **{"store.url": store_url})) as client:
        first = client.ask("Look", files=[("a.png", PNG)], user="alice")
        second = client.ask("Twice", files=[("b.png", PNG), ("c.png", PNG)], user="alice")
        theirs = client.ask("Mine", files=[("d.png", PNG)], user="bob")
        assert stored() == (1, 4)  # four attachments, one copy of the bytes
        assert client.conversations.attachment(sha, user="alice") == PNG
        assert client.conversations.attachment(sha, user="bob") == PNG
        with pytest.raises(NotFoundError, match="No attachment"):
            client.conversations.attachment(sha, user="carol")  # never attached it
        with pytest.raises(NotFoundError):
            client.conversations.history(theirs.conversation_id, user="alice")
        names = [
            f.name
            for f in client.conversations.history(second.conversation_id, user="alice")[
                0
            ].attachments
        ]
        assert names == ["b.png", "c.png"]
        # Deleting conversations unlinks their files; bytes nobody links go too.
        client.conversations.delete(first.conversation_id, user="alice")
        client.conversations.delete(second.conversation_id, user="alice")
        with pytest.raises(NotFoundError):
            client.conversations.attachment(sha, user="alice")
        assert client.conversations.attachment(sha, user="bob") == PNG
        assert stored() == (1, 1)
        client.conversations.delete(theirs.conversation_id, user="bob")
        assert stored() == (0, 0)
