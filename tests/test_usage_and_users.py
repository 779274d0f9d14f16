"""aBLT's chat options and statistics, per-model system prompts, and per-user isolation."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chinwag import AsyncClient, Client, Config
from chinwag.errors import InputError, NotFoundError
from tests.conftest import make_config
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.anyio

TODAY = datetime.now(UTC).date()


async def test_language_max_words_user_and_search(config: Config, server: FakeOpenAI) -> None:
    async with AsyncClient(config) as client:
        reply = await client.ask(
            "Hello, bot!", language="Arabic", max_words=100, user=42, search=False
        )
        request = server.requests[-1]
        system = request["messages"][0]["content"]
        assert "Answer in Arabic." in system
        assert "at most 100 words" in system
        assert request["max_tokens"] == 175  # derived from the word budget
        # The turn and its usage belong to user 42, and the options are stored with it.
        history = await client.conversations.history(reply.conversation_id, user=42)
        assert history[0].meta == {"language": "Arabic", "max_words": 100, "search": False}
        assert (await client.stats.day(user=42)).requests == 1
        assert (await client.stats.day()).requests == 0
        await client.ask("short", max_words=10, max_tokens=500)
        assert server.requests[-1]["max_tokens"] == 500  # an explicit max_tokens wins
        with pytest.raises(InputError, match="max_words"):
            await client.ask("hi", max_words=0)
        with pytest.raises(InputError, match="language"):
            await client.ask("hi", language="  ")


async def test_statistics_per_day_user_and_bot(server: FakeOpenAI, store_url: str) -> None:
    config = make_config(server, **{"store.url": store_url})
    async with AsyncClient(config) as client:
        await client.bots.create(name="Other")
        first = await client.ask("one two three")
        second = await client.ask("four five", bot="other")
        stats = await client.stats.usage(start_date=TODAY - timedelta(days=2))
        assert [item.date for item in stats.items] == [
            TODAY - timedelta(days=2),
            TODAY - timedelta(days=1),
            TODAY,
        ]
        today = stats.items[-1]
        assert today.requests == 2
        for field in ("prompt_tokens", "completion_tokens", "prompt_words", "completion_words"):
            expected = getattr(first.usage, field) + getattr(second.usage, field)
            assert getattr(today, field) == expected, field
        assert today.completion_words == 5 + 4  # "You said: one two three", "... four five"
        assert stats.total.requests == 2
        assert stats.total.total_tokens == today.total_tokens
        assert stats.items[0].requests == 0  # a day without use counts zero
        only_other = await client.stats.usage(bot="other")
        assert only_other.total.requests == 1
        total = await client.stats.total(start_date=TODAY.isoformat(), end_date=TODAY.isoformat())
        assert total.requests == 2
        with pytest.raises(InputError, match="Not a date"):
            await client.stats.usage(start_date="last tuesday")
        with pytest.raises(InputError, match="before start_date"):
            await client.stats.usage(start_date=TODAY, end_date=TODAY - timedelta(days=1))


async def test_failed_turns_count_as_errors(server: FakeOpenAI) -> None:
    from tests.fake_openai import Script

    config = make_config(server, **{"providers.openai.max_retries": 0})
    server.script(Script(status=500))
    async with AsyncClient(config) as client:
        with pytest.raises(Exception, match="500"):
            await client.ask("fail")
        day = await client.stats.day(TODAY)
    assert (day.requests, day.errors) == (1, 1)


async def test_per_model_system_prompts_as_in_hugchat(config: Config, server: FakeOpenAI) -> None:
    async with AsyncClient(config) as client:
        client.set_system_prompt("test-model", "You are a pirate.")
        await client.ask("hi")
        assert server.requests[-1]["messages"][0]["content"] == "You are a pirate."
        client.set_system_prompts({"test-model": None, "other-model": "Unused here."})
        await client.ask("hi")
        assert server.requests[-1]["messages"][0]["content"] == "You are a helpful assistant."


async def test_user_b_cannot_reach_user_a(server: FakeOpenAI, store_url: str) -> None:
    config = make_config(server, **{"store.url": store_url})
    async with AsyncClient(config) as client:
        secret = await client.ask("my secret", user="alice")
        history = await client.conversations.history(secret.conversation_id, user="alice")
        a_message = history[0].id
        await client.bots.create(name="Alice's bot", slug="alices", user="alice")

        # Seen from bob's side, none of alice's things exist.
        conversations = client.conversations
        assert await conversations.list(user="bob") == []
        for attempt in (
            conversations.get(secret.conversation_id, user="bob"),
            conversations.history(secret.conversation_id, user="bob"),
            conversations.rename(secret.conversation_id, "mine now", user="bob"),
            conversations.delete(secret.conversation_id, user="bob"),
            conversations.retry(secret.conversation_id, user="bob"),
            conversations.edit(a_message, "overwrite", user="bob"),
            conversations.generate_title(secret.conversation_id, user="bob"),
            client.ask("continue", conversation=secret.conversation_id, user="bob"),
        ):
            with pytest.raises(NotFoundError):
                await attempt
        assert (await client.stats.day(user="bob")).requests == 0
        assert await client.bots.get(slug="alices", user="bob") is None
        with pytest.raises(NotFoundError):
            await client.ask("hi", bot="alices", user="bob")

        # And alice's conversation is untouched.
        unchanged = await conversations.get(secret.conversation_id, user="alice")
        assert unchanged.title is None
        assert len(await conversations.history(secret.conversation_id, user="alice")) == 2
        assert (await client.stats.day(user="alice")).requests == 1


def test_statistics_sync(config: Config) -> None:
    with Client(config) as client:
        client.ask("hi")
        assert client.stats.day().requests == 1
        assert client.stats.total().requests == 1
        assert len(client.stats.usage(start_date=TODAY - timedelta(days=6)).items) == 7


async def test_a_taken_bot_uid_reads_the_same_whoever_has_it(
    server: FakeOpenAI, store_url: str
) -> None:
    config = make_config(server, **{"store.url": store_url})
    async with AsyncClient(config) as client:
        mine = await client.bots.create(name="Mine", user="bob")
        alices = await client.bots.create(name="Hers", user="alice")
        answers = []
        for uid in (mine.uid, alices.uid):
            with pytest.raises(InputError) as caught:
                await client.bots.create(name="Copy", uid=uid, user="bob")
            answers.append(str(caught.value).replace(uid, "UID"))
        assert answers[0] == answers[1]
        assert "taken" in answers[0]
        # Neither bot was touched.
        assert (await client.bots.get(uid=alices.uid, user="alice")) == alices
        assert (await client.bots.get(uid=mine.uid, user="bob")) == mine


async def test_an_import_of_taken_ids_reads_the_same_whoever_has_them(config: Config) -> None:
    async with AsyncClient(config) as client:
        alice = await client.ask("alice's", user="alice")
        bob = await client.ask("bob's", user="bob")
        answers = []
        for reply, owner in ((bob, "bob"), (alice, "alice")):
            exported = await client.conversations.export(reply.conversation_id, user=owner)
            with pytest.raises(InputError) as caught:
                await client.conversations.import_json(exported, user="bob")
            answers.append(str(caught.value).replace(reply.conversation_id, "ID"))
        assert answers[0] == answers[1]


async def test_users_are_normalised_and_reads_create_none(config: Config, home: Path) -> None:
    def users() -> int:
        db = sqlite3.connect(home / "chinwag.db")
        try:
            return int(db.execute("SELECT count(*) FROM users").fetchone()[0])
        finally:
            db.close()

    async with AsyncClient(config) as client:
        await client.ask("hi", user=1)
        for same in ("1", " 1 "):
            assert len(await client.conversations.list(user=same)) == 1
        before = users()
        for wrong in (1.0, True, "", "   ", ["1"], "a\nb"):
            with pytest.raises(InputError, match="user"):
                await client.conversations.list(user=wrong)  # type: ignore[arg-type]
        # Reads for people who never wrote anything find nothing and store nobody.
        assert await client.conversations.list(user="nobody") == []
        assert (await client.stats.day(user="nobody")).requests == 0
        assert await client.bots.get(slug="default", user="ghost") is not None
        with pytest.raises(NotFoundError):
            await client.conversations.get("0" * 32, user="stranger")
        assert users() == before


async def test_statistics_over_any_span_stay_fast(config: Config) -> None:
    async with AsyncClient(config) as client:
        await client.ask("one two three")
        with pytest.raises(InputError) as caught:
            await client.stats.usage(start_date="0001-01-01", end_date="9999-12-31")
        assert str(caught.value) == (
            "stats.usage lists at most 366 days, one item each, and 0001-01-01 to 9999-12-31 "
            "is 3652059: use stats.total, or empty_days=False, for a longer span."
        )
        used = await client.stats.usage(
            start_date="0001-01-01", end_date="9999-12-31", empty_days=False
        )  # only the days with use are listed (aBLT's statistics): any span
        assert [item.date for item in used.items] == [TODAY]
        assert used.items[0].requests == used.total.requests == 1
        assert (await client.stats.usage(empty_days=False, user="idle")).items == []
        with pytest.raises(InputError, match="empty_days must be True or False"):
            await client.stats.usage(empty_days="no")  # type: ignore[arg-type]
        total = await client.stats.total(start_date="0001-01-01", end_date="9999-12-31")
        assert (total.start_date.isoformat(), total.end_date.isoformat()) == (
            "0001-01-01",
            "9999-12-31",
        )
        assert total.requests == 1
        assert total.total_tokens == (await client.stats.day()).total_tokens > 0
        year = await client.stats.usage(start_date=TODAY - timedelta(days=365), end_date=TODAY)
        assert len(year.items) == 366
        assert year.total.requests == 1
        last = await client.stats.usage(start_date="9999-12-30", end_date="9999-12-31")
        assert [item.date.isoformat() for item in last.items] == ["9999-12-30", "9999-12-31"]
