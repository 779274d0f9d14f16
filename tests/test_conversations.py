"""Conversations as in hugchat: create, list, rename, delete, retry, edit, titles."""

from __future__ import annotations

import json
import sqlite3
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import anyio
import pytest

from chinwag import AsyncClient, Client, Config
from chinwag.errors import InputError, NotFoundError
from tests.conftest import Runner, make_config
from tests.fake_openai import FakeOpenAI, Script

pytestmark = pytest.mark.anyio


async def test_create_then_talk_in_it(config: Config, server: FakeOpenAI) -> None:
    async with AsyncClient(config) as client:
        poet = await client.bots.create(name="Poet", system_prompt="Rhyme.")
        conversation = await client.conversations.create(bot="poet", system="Be very brief.")
        assert (conversation.bot, conversation.title) == (poet.uid, None)
        assert await client.conversations.history(conversation.id) == []
        reply = await client.ask("hi", conversation=conversation.id)
        assert reply.conversation_id == conversation.id
        assert reply.bot == poet.uid
        # The conversation's own system prompt wins over its bot's.
        assert server.requests[-1]["messages"][0]["content"] == "Be very brief."


async def test_rename_and_delete_with_its_messages(config: Config) -> None:
    async with AsyncClient(config) as client:
        keep = await client.ask("keep me")
        gone = await client.ask("delete me")
        renamed = await client.conversations.rename(keep.conversation_id, "Kept")
        assert renamed.title == "Kept"
        await client.conversations.delete(gone.conversation_id)
        assert [c.id for c in await client.conversations.list()] == [keep.conversation_id]
        with pytest.raises(NotFoundError):
            await client.conversations.history(gone.conversation_id)
        store = await client._engine.store()
        from sqlalchemy import func, select

        from chinwag.store.schema import messages

        count = await store._run(
            lambda conn: conn.execute(select(func.count()).select_from(messages)).scalar()
        )
        assert count == 2  # only the kept conversation's question and answer remain


async def test_retry_branches_and_history_follows_the_new_branch(
    config: Config, server: FakeOpenAI
) -> None:
    async with AsyncClient(config) as client:
        first = await client.ask("Tell me a joke")
        server.script(Script(text="A better joke"))
        again = await client.conversations.retry(first.conversation_id)
        assert again.text == "A better joke"
        history = await client.conversations.history(first.conversation_id)
        assert [(m.role, m.content) for m in history] == [
            ("user", "Tell me a joke"),
            ("assistant", "A better joke"),
        ]
        # The first answer is kept on its own branch, a sibling of the new one.
        thread = await (await client._engine.store()).thread(
            *(await client._engine.user_id(None)), first.conversation_id
        )
        assert first.message_id is not None
        old = thread.message(first.message_id)
        assert old is not None
        assert old.parent_id == history[0].id
        # The retry sent the question once, without the answer it replaces.
        assert [m["content"] for m in server.requests[-1]["messages"][1:]] == ["Tell me a joke"]


async def test_edit_branches_from_an_earlier_question(config: Config, server: FakeOpenAI) -> None:
    async with AsyncClient(config) as client:
        one = await client.ask("first question")
        two = await client.ask("second question", conversation=one.conversation_id)
        history = await client.conversations.history(one.conversation_id)
        second_question = history[2]
        edited = await client.conversations.edit(second_question.id, "second, rephrased")
        assert edited.conversation_id == one.conversation_id
        history = await client.conversations.history(one.conversation_id)
        assert [m.content for m in history] == [
            "first question",
            "You said: first question",
            "second, rephrased",
            "You said: second, rephrased",
        ]
        assert [m["content"] for m in server.requests[-1]["messages"][1:]] == [
            "first question",
            "You said: first question",
            "second, rephrased",
        ]
        with pytest.raises(InputError, match="not a user message"):
            await client.conversations.edit(history[1].id, "answers cannot be edited")
        with pytest.raises(NotFoundError):
            await client.conversations.edit("no-such-message", "x")
        assert two.message_id != edited.message_id


async def test_retry_needs_a_question(config: Config) -> None:
    async with AsyncClient(config) as client:
        empty = await client.conversations.create()
        with pytest.raises(InputError, match="question to answer again"):
            await client.conversations.retry(empty.id)


# -- titles ------------------------------------------------------------------------------


async def test_a_title_is_written_in_the_background(server: FakeOpenAI) -> None:
    config = make_config(server, titles=True)
    # The answer comes at once; the title request is slow.
    server.script(Script(text="Paris is the capital."), Script(text='"Capital of France"', delay=1))
    async with AsyncClient(config) as client:
        reply = await client.ask("What is the capital of France?")
        assert (await client.conversations.get(reply.conversation_id)).title is None
        await client.settle()
        titled = await client.conversations.get(reply.conversation_id)
        assert titled.title == "Capital of France"
        title_request = server.requests[-1]
        assert "What is the capital of France?" in title_request["messages"][0]["content"]
        assert "stream" not in title_request
        # Only the first exchange asks for a title.
        await client.ask("And Spain?", conversation=reply.conversation_id)
        await client.settle()
        assert (await client.conversations.get(reply.conversation_id)).title == "Capital of France"


async def test_a_failed_title_never_fails_the_turn(server: FakeOpenAI) -> None:
    config = make_config(server, titles=True, **{"providers.openai.max_retries": 0})
    server.script(Script(text="An answer"), Script(status=500))
    async with AsyncClient(config) as client:
        reply = await client.ask("Why is the sky blue on clear summer days?")
        assert reply.text == "An answer"
        await client.settle()
        titled = await client.conversations.get(reply.conversation_id)
    assert titled.title == "Why is the sky blue on..."  # the question's first words


async def test_titles_on_demand_and_by_the_title_bot(server: FakeOpenAI) -> None:
    config = make_config(server, title_bot="titler")
    async with AsyncClient(config) as client:
        await client.bots.create(name="Titler", model="other-model")
        reply = await client.ask("hello there")
        server.script(Script(text="Title: Greetings\nextra lines"))
        titled = await client.conversations.generate_title(reply.conversation_id)
    assert titled.title == "Greetings"
    assert server.requests[-1]["model"] == "other-model"


def test_sync_calls_can_return_futures(config: Config) -> None:
    with Client(config) as client:
        reply = client.ask("hi")
        history = client.conversations.history(reply.conversation_id, wait=False)
        assert isinstance(history, Future)
        assert [m.role for m in history.result(timeout=10)] == ["user", "assistant"]
        title = client.conversations.generate_title(reply.conversation_id, wait=False)
        assert title.result(timeout=10).title
        deleted = client.conversations.delete(reply.conversation_id, wait=False)
        assert deleted.result(timeout=10) is None
        assert client.conversations.list() == []


def _exported(client: Client) -> tuple[str, dict[str, Any]]:
    first = client.ask("one")
    client.ask("two", conversation=first.conversation_id)
    data = json.loads(client.conversations.export(first.conversation_id))
    client.conversations.delete(first.conversation_id)
    return first.conversation_id, data


@pytest.mark.parametrize("shape", ["self", "pair"])
def test_import_refuses_parent_cycles(config: Config, shape: str) -> None:
    with Client(config) as client:
        _, data = _exported(client)
        msgs = data["messages"]
        if shape == "self":
            msgs[2]["parent_id"] = msgs[2]["id"]
        else:
            msgs[0]["parent_id"], msgs[1]["parent_id"] = msgs[1]["id"], msgs[0]["id"]
        with pytest.raises(InputError, match="cycle"):
            client.conversations.import_json(json.dumps(data))
        assert client.conversations.list() == []


def test_a_stored_cycle_cannot_hang_history_ask_or_show(
    config: Config, home: Path, run: Runner
) -> None:
    with Client(config) as client:
        reply = client.ask("one")
        cid = reply.conversation_id
        question, answer = client.conversations.history(cid)
    # As an old version or a hand edit could have left it: the question's parent is its answer.
    db = sqlite3.connect(home / "chinwag.db")
    with db:
        db.execute("UPDATE messages SET parent_id = ? WHERE id = ?", (answer.id, question.id))
    db.close()
    with Client(config) as client:
        assert [m.id for m in client.conversations.history(cid)] == [question.id, answer.id]
        assert client.ask("two", conversation=cid).text == "You said: two"
    shown = run("conversations", "show", cid)
    assert shown.returncode == 0, shown.stderr
    assert "You said: two" in shown.stdout


def test_latest_is_the_newest_activity(config: Config) -> None:
    with Client(config) as client:
        assert client.conversations.latest() is None
        first = client.ask("one").conversation_id
        second = client.ask("two").conversation_id
        assert client.conversations.latest().id == second  # type: ignore[union-attr]
        client.ask("three", conversation=first)
        assert client.conversations.latest().id == first  # type: ignore[union-attr]


@pytest.mark.parametrize("titles", [None, "words", "auto"])
def test_by_default_a_title_costs_no_model_call(server: FakeOpenAI, titles: str | None) -> None:
    values = {} if titles is None else {"titles": titles}
    config = make_config(server, **values)
    if titles is None:
        config.set("titles", "auto")  # the default, undoing the test config's "off"
    with Client(config) as client:
        reply = client.ask("  What is the capital of France, and why is it there?")
        client.settle()
        conversation = client.conversations.get(reply.conversation_id)
    assert len(server.requests) == 1  # the answer only
    assert conversation.title == "What is the capital of France,..."


@pytest.mark.parametrize(
    "written",
    [
        "I'm sorry, I can't give a title for this conversation.",
        "Write a title of at most six words for the conversation below.",
        "",
    ],
)
def test_a_refusal_or_an_echo_is_never_a_title(server: FakeOpenAI, written: str) -> None:
    server.script(
        Script(text="Paris."), Script(text=written or None, chunks=[] if not written else None)
    )
    with Client(make_config(server, titles="model")) as client:
        reply = client.ask("What is the capital of France?")
        client.settle()
        assert client.conversations.get(reply.conversation_id).title == (
            "What is the capital of France?"
        )


def test_titles_off_and_a_title_provider(server: FakeOpenAI) -> None:
    with Client(make_config(server, titles="off")) as client:
        reply = client.ask("hello")
        client.settle()
        assert client.conversations.get(reply.conversation_id).title is None
    server.requests.clear()
    config = make_config(
        server,
        **{"titles.mode": "model", "titles.provider": "writer", "providers.writer.type": "openai",
           "providers.writer.base_url": server.base_url, "providers.writer.model": "other-model"},
    )  # fmt: skip
    server.script(Script(text="hi"), Script(text="A Greeting"))
    with Client(config) as client:
        reply = client.ask("hello")
        client.settle()
        assert client.conversations.get(reply.conversation_id).title == "A Greeting"
    assert [r["model"] for r in server.requests] == ["test-model", "other-model"]


@pytest.mark.postgres
async def test_of_two_workers_one_writes_a_title(server: FakeOpenAI, postgres_url: str) -> None:
    from chinwag.titles import title_in_background

    config = make_config(server, **{"store.url": postgres_url})
    async with AsyncClient(config) as first, AsyncClient(config) as second:
        reply = await first.ask("What is the capital of France?")
        asked = len(server.requests)
        server.script(Script(text="Capital of France", delay=0.5))
        engines = [first._engine, second._engine]
        bot = await engines[0].bot(None, 1)
        async with anyio.create_task_group() as group:
            for engine in engines:  # two workers, each told to title the same conversation
                uid, name = await engine.user_id(None)
                group.start_soon(title_in_background, engine, uid, name, bot,
                                 "What is the capital of France?", reply)  # fmt: skip
        assert len(server.requests) == asked + 1
        assert (await second.conversations.get(reply.conversation_id)).title == "Capital of France"
