"""AsyncClient and the engine's turn, end to end: loopback server, SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import pytest

import chinwag
from chinwag import AsyncClient, Config
from chinwag.errors import (
    InputError,
    NotFoundError,
    ProviderConnectionError,
    ProviderUnavailableError,
)
from chinwag.types import Done, ErrorEvent, TextDelta, UsageEvent
from tests.conftest import make_config
from tests.fake_openai import FakeOpenAI, Script

pytestmark = pytest.mark.anyio


async def test_ask_stores_the_turn_and_reports_usage(config: Config, server: FakeOpenAI) -> None:
    async with AsyncClient(config) as client:
        reply = await client.ask("Say hello!")
        assert reply.text == "You said: Say hello!"
        assert reply.status == "complete"
        assert reply.usage.completion_tokens == 4  # one per streamed chunk on this server
        assert reply.usage.prompt_tokens > 0
        assert reply.usage.completion_words == 4
        assert not reply.usage.estimated
        history = await client.conversations.history(reply.conversation_id)
    assert [(m.role, m.content, m.status) for m in history] == [
        ("user", "Say hello!", "complete"),
        ("assistant", "You said: Say hello!", "complete"),
    ]
    assert history[1].usage == reply.usage
    assert history[1].model == "test-model"


async def test_a_conversation_continues_with_its_history(
    config: Config, server: FakeOpenAI
) -> None:
    async with AsyncClient(config) as client:
        first = await client.ask("Say hello!")
        second = await client.ask("And in French?", conversation=first.conversation_id)
    assert second.conversation_id == first.conversation_id
    sent = server.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"] == "Say hello!"
    assert sent[2]["content"] == "You said: Say hello!"
    assert sent[3]["content"] == "And in French?"


async def test_stream_yields_deltas_then_the_reply(config: Config, server: FakeOpenAI) -> None:
    async with AsyncClient(config) as client:
        stream = client.stream("Say three words about earth")
        with pytest.raises(chinwag.ChinwagError, match="not finished"):
            _ = stream.reply
        deltas = [delta async for delta in stream]
        assert len(deltas) > 3
        assert "".join(deltas) == stream.reply.text == "You said: Say three words about earth"


async def test_events_are_typed_and_end_with_done(config: Config, server: FakeOpenAI) -> None:
    async with AsyncClient(config) as client:
        events = [e async for e in client.stream("hi there").events()]
    assert all(isinstance(e, TextDelta) for e in events[:-2])
    assert isinstance(events[-2], UsageEvent)
    assert isinstance(events[-1], Done)
    assert events[-1].reply.usage == events[-2].usage


async def test_chat_takes_a_message_list(config: Config, server: FakeOpenAI) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "I like pizza"},
        {"role": "assistant", "content": "Me too!"},
        {"role": "user", "content": "What do I like?"},
    ]
    async with AsyncClient(config) as client:
        reply = await client.chat(messages)
        sent = server.requests[-1]["messages"]
        assert sent == messages  # the list's system prompt replaces the bot's
        history = await client.conversations.history(reply.conversation_id)
        assert [m.content for m in history] == [
            "I like pizza",
            "Me too!",
            "What do I like?",
            "You said: What do I like?",
        ]
        # The conversation remembers the list's system prompt when continued.
        await client.ask("More?", conversation=reply.conversation_id)
        assert server.requests[-1]["messages"][0] == messages[0]
        streamed = await client.chat(messages[-1:], stream=True)
        assert await streamed.text() == "You said: What do I like?"


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([], "empty"),
        ([{"role": "assistant", "content": "hi"}], "last message"),
        ([{"role": "robot", "content": "hi"}], r"messages\[0\]"),
        ([{"role": "user", "content": 5}], r"messages\[0\]"),
    ],
)
async def test_bad_message_lists_are_explained(
    config: Config, messages: list[dict[str, object]], problem: str
) -> None:
    async with AsyncClient(config) as client:
        with pytest.raises(InputError, match=problem):
            await client.chat(messages)


async def test_overrides_reach_the_request(config: Config, server: FakeOpenAI) -> None:
    async with AsyncClient(config) as client:
        reply = await client.ask(
            "hi", system="Answer in haiku.", temperature=0.1, max_tokens=20, user="alice"
        )
        request = server.requests[-1]
        assert request["messages"][0] == {"role": "system", "content": "Answer in haiku."}
        assert (request["temperature"], request["max_tokens"]) == (0.1, 20)
        # The turn belongs to alice: the default user does not see it.
        assert [c.id for c in await client.conversations.list(user="alice")] == [
            reply.conversation_id
        ]
        assert await client.conversations.list() == []
        with pytest.raises(NotFoundError):
            await client.conversations.history(reply.conversation_id)
        with pytest.raises(NotFoundError):
            await client.ask("sneaky", conversation=reply.conversation_id)


async def test_bad_arguments_are_explained(config: Config) -> None:
    async with AsyncClient(config) as client:
        with pytest.raises(InputError, match="empty"):
            await client.ask("   ")
        with pytest.raises(InputError, match="temperature"):
            await client.ask("hi", temperature=5)
        with pytest.raises(NotFoundError, match="Known bots: default"):
            await client.ask("hi", bot="nobody")


async def test_a_cut_stream_keeps_the_partial_answer(config: Config, server: FakeOpenAI) -> None:
    server.script(Script(text="one two three four", cut_after=2))
    async with AsyncClient(config) as client:
        with pytest.raises(ProviderConnectionError) as caught:
            await client.stream("count").text()
        partial = caught.value.partial
        assert partial is not None
        assert partial.text == "one two"
        assert partial.status == "partial"
        history = await client.conversations.history(partial.conversation_id)
    assert [(m.role, m.content, m.status) for m in history] == [
        ("user", "count", "complete"),
        ("assistant", "one two", "partial"),
    ]
    assert "broke mid-answer" in (history[1].error or "")


async def test_ask_makes_one_plain_request(config: Config, server: FakeOpenAI) -> None:
    async with AsyncClient(config) as client:
        reply = await client.ask("no stream needed")
    assert "stream" not in server.requests[-1]
    assert reply.text == "You said: no stream needed"
    assert reply.finish_reason == "stop"
    assert not reply.usage.estimated


async def test_a_cut_plain_answer_keeps_the_question(config: Config, server: FakeOpenAI) -> None:
    config.set("providers.openai.max_retries", 0)
    server.script(Script(cut_after=0))
    async with AsyncClient(config) as client:
        with pytest.raises(ProviderConnectionError) as caught:
            await client.ask("anyone?")
        partial = caught.value.partial
        assert partial is not None
        history = await client.conversations.history(partial.conversation_id)
    assert [(m.role, m.content, m.status) for m in history] == [
        ("user", "anyone?", "complete"),
        ("assistant", "", "error"),
    ]


async def test_an_unreadable_plain_answer_is_a_response_error(
    config: Config, server: FakeOpenAI
) -> None:
    server.script(Script(malformed_after=0))
    async with AsyncClient(config) as client:
        with pytest.raises(chinwag.ResponseError, match="cannot read"):
            await client.ask("hi")


async def test_the_user_message_survives_a_failed_provider(
    config: Config, server: FakeOpenAI
) -> None:
    config.set("providers.openai.max_retries", 0)
    server.script(Script(status=500))
    async with AsyncClient(config) as client:
        events: list[object] = []
        stream = client.stream("are you there?")

        async def consume() -> None:
            async for event in stream.events():
                events.append(event)

        with pytest.raises(ProviderUnavailableError):
            await consume()
        assert isinstance(events[-1], ErrorEvent)
        assert events[-1].kind == "ProviderUnavailableError"
        (conversation,) = await client.conversations.list()
        history = await client.conversations.history(conversation.id)
    assert [(m.role, m.content, m.status) for m in history] == [
        ("user", "are you there?", "complete"),
        ("assistant", "", "error"),
    ]


async def test_stopping_a_stream_stores_what_was_said(config: Config, server: FakeOpenAI) -> None:
    server.script(Script(text=" ".join(f"w{i}" for i in range(50))))
    async with AsyncClient(config) as client:
        stream = client.stream("talk")
        received = []
        async for delta in stream:
            received.append(delta)
            if len(received) == 3:
                break
        await stream.aclose()
        (conversation,) = await client.conversations.list()
        history = await client.conversations.history(conversation.id)
    assert history[-1].status == "partial"
    assert history[-1].content == "".join(received)


async def test_cancelling_a_turn_stores_the_partial_answer(
    config: Config, server: FakeOpenAI
) -> None:
    server.script(Script(text="slow " * 5, delay=0.0))
    server.script(Script(delay=5.0))
    async with AsyncClient(config) as client:
        await client.ask("first")
        with anyio.move_on_after(0.5):
            await client.ask("never answered")
        conversations = await client.conversations.list()
        history = await client.conversations.history(conversations[0].id)
    assert [(m.content, m.status) for m in history] == [
        ("never answered", "complete"),
        ("", "error"),
    ]


async def test_usage_is_estimated_when_the_server_sends_none(
    config: Config, server: FakeOpenAI
) -> None:
    server.script(*[Script(text="four words right here", usage=False)] * 2)
    async with AsyncClient(config) as client:
        streamed = await client.stream("count my tokens please").text()
        assert streamed == "four words right here"
        reply = await client.ask("count my tokens please")
    assert reply.usage.estimated
    assert reply.usage.completion_tokens > 0
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_words == 4


async def test_history_is_trimmed_to_the_context_window(server: FakeOpenAI) -> None:
    config = make_config(server, **{"models.test-model.context_window": 120})
    async with AsyncClient(config) as client:
        reply = await client.ask("word " * 40)
        for _ in range(3):
            reply = await client.ask("word " * 40, conversation=reply.conversation_id)
    sent = server.requests[-1]["messages"]
    assert sent[0]["role"] == "system"  # the system prompt always stays
    assert sent[1]["role"] == "user"  # never starts on an orphaned answer
    assert len(sent) < 1 + 2 * 4
    assert reply.trimmed_messages == 2 * 3 - (len(sent) - 2)
    assert reply.trimmed_messages > 0


async def test_the_default_bot_exists_out_of_the_box(config: Config, server: FakeOpenAI) -> None:
    async with AsyncClient(config) as client:
        reply = await client.ask("hi")
        conversation = await client.conversations.get(reply.conversation_id)
    assert reply.bot == conversation.bot
    assert server.requests[-1]["messages"][0]["content"] == "You are a helpful assistant."
    assert server.requests[-1]["model"] == "test-model"


async def test_conversations_list_newest_first_with_paging(
    config: Config, server: FakeOpenAI
) -> None:
    async with AsyncClient(config) as client:
        ids = [(await client.ask(f"q{i}")).conversation_id for i in range(3)]
        await client.ask("bump", conversation=ids[0])
        listed = [c.id for c in await client.conversations.list()]
        page = [c.id for c in await client.conversations.list(limit=1, offset=1)]
    assert listed == [ids[0], ids[2], ids[1]]
    assert page == [ids[2]]


async def test_many_concurrent_turns_share_one_client(config: Config, server: FakeOpenAI) -> None:
    async with AsyncClient(config) as client:
        replies = await asyncio.gather(*(client.ask(f"n{i}") for i in range(40)))
        assert sorted(r.text for r in replies) == sorted(f"You said: n{i}" for i in range(40))
        assert len(await client.conversations.list(limit=100)) == 40


async def test_the_database_file_lives_in_chinwag_home(
    config: Config, server: FakeOpenAI, home: Path
) -> None:
    async with AsyncClient(config) as client:
        await client.ask("hi")
    assert (home / "chinwag.db").is_file()


async def test_postgres_store_runs_turns(server: FakeOpenAI, postgres_url: str) -> None:
    config = make_config(server, **{"store.url": postgres_url})
    async with AsyncClient(config) as client:
        reply = await client.ask("hello postgres")
        again = await client.ask("and again", conversation=reply.conversation_id)
        history = await client.conversations.history(again.conversation_id)
    assert [m.content for m in history] == [
        "hello postgres",
        "You said: hello postgres",
        "and again",
        "You said: and again",
    ]


async def test_a_password_in_the_store_url_is_hidden_in_health(server: FakeOpenAI) -> None:
    config = make_config(server, **{"store.url": "postgresql://me:s3cret@127.0.0.1:1/db"})
    async with AsyncClient(config) as client:
        health = await client.health()
    assert not health.store.ok
    assert "s3cret" not in health.model_dump_json()


async def test_system_prompt_precedence(server: FakeOpenAI) -> None:
    config = make_config(
        server,
        **{"system_prompt": "global", "models.test-model.system_prompt": "per model"},
    )
    poet = chinwag.Bot(uid="p", slug="poet", name="Poet", system_prompt="per bot")

    def sent() -> str:
        first = server.requests[-1]["messages"][0]
        return str(first["content"]) if first["role"] == "system" else ""

    async with AsyncClient(config) as client:
        await client.ask("hi")
        assert sent() == "per model"  # over the config's
        reply = await client.ask("hi", bot=poet)
        assert sent() == "per bot"  # over the model's
        chat = await client.chat(
            [{"role": "system", "content": "per conversation"}, {"role": "user", "content": "hi"}],
            bot=poet,
        )
        await client.ask("again", conversation=chat.conversation_id, bot=poet)
        assert sent() == "per conversation"  # over the bot's
        await client.ask("hi", conversation=reply.conversation_id, bot=poet, system="per call")
        assert sent() == "per call"  # over everything
    async with AsyncClient(make_config(server, **{"system_prompt": "global"})) as client:
        await client.ask("hi")
        assert sent() == "global"


async def test_health_reports_store_and_providers_without_a_completion(
    server: FakeOpenAI,
) -> None:
    config = make_config(
        server,
        **{
            "providers.down.type": "openai",
            "providers.down.base_url": "http://127.0.0.1:9/v1",
            "providers.down.max_retries": 0,
        },
    )
    async with AsyncClient(config) as client:
        health = await client.health()
    by_name = {p.name: p for p in health.providers}
    assert health.ok
    assert health.default_provider == "openai"
    assert "OpenAI-compatible server" in health.reason
    assert by_name["openai"].ok
    assert by_name["openai"].latency_ms is not None
    assert not by_name["down"].ok
    assert "Could not connect" in by_name["down"].detail
    assert health.store.ok
    assert health.store.latency_ms is not None
    assert server.requests == []  # nothing was paid for: only the model list was read


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda c: c.chat("hello"), "messages must be a list"),
        (lambda c: c.chat([1, 2]), r"messages\[0\] must be a dict"),
        (lambda c: c.ask("hi", conversation=["abc"]), "conversation must be an id"),
        (lambda c: c.ask("bad \ud800 text"), "lone surrogate"),
        (lambda c: c.ask("hi", system="bad \udfff"), "system holds an invalid character"),
        (lambda c: c.ask("hi", system=5), "system must be text"),
        (lambda c: c.ask(5), "prompt must be text"),
        (lambda c: c.ask("hi", search="yes"), "search must be True"),
        (lambda c: c.conversations.rename(-(10**20), "x"), "conversation_id must be an id"),
        (lambda c: c.conversations.rename("abc", -(10**20)), "title must be text"),
        (lambda c: c.conversations.history(None), "conversation_id must be an id"),
        (lambda c: c.conversations.list(limit=10**20), "limit must be a whole number"),
        (lambda c: c.conversations.list(offset=-1), "offset must be a whole number"),
        (lambda c: c.ask("hi", stop="\ud800"), "stop.0. holds an invalid character"),
        (lambda c: c.ask("a\x00b"), "NUL character"),
        (lambda c: c.conversations.create(system=True), "system must be text"),
        (lambda c: c.conversations.create(title=2**70), "title must be text"),
        (lambda c: c.conversations.create(bot=["x"]), "bot must be a name, slug or uid"),
        (lambda c: c.bots.find(["x"]), "bot must be a name, slug or uid"),
        (lambda c: c.bots.get(slug=["x"]), "slug must be a name, slug or uid"),
        (lambda c: c.bots.create("not a bot"), "takes a Bot or its fields"),
        (lambda c: c.bots.create(name="", slug=""), "Invalid bot field"),
        (lambda c: c.bots.create(name="x\u202ey"), "Invalid bot field name"),
        (lambda c: c.stats.usage(bot=["x"]), "bot must be a name, slug or uid"),
        (lambda c: c.templates.get(5), "Invalid template name"),
        (lambda c: c.templates.get("x" * 300), "Invalid template name"),
        (lambda c: c.templates.run("summarize", 5), "variables are a mapping"),
        (lambda c: c.workflows.get(["x"]), "Invalid workflow name"),
        (lambda c: c.set_system_prompts(None), "prompts must map model names"),
    ],
)
def test_wrongly_typed_arguments_are_one_clear_error(
    config: Config, server: FakeOpenAI, call: Any, expected: str
) -> None:
    with chinwag.Client(config) as client:
        with pytest.raises(InputError, match=expected):
            call(client)
        # Nothing was stored and the model was never asked.
        assert client.conversations.list() == []
    assert server.requests == []


@pytest.mark.parametrize(
    "data",
    [
        {"conversation": 5, "messages": []},
        {"conversation": {}, "messages": 5},
        {"conversation": {}, "messages": [5]},
        {"conversation": {"id": 5}, "messages": []},
        {"conversation": {}, "messages": [], "current_message_id": []},
        {"conversation": {"id": "\ud800"}, "messages": []},
        {"conversation": {}, "messages": [{"usage": {"prompt_tokens": 10**24}}]},
    ],
)
def test_a_wrongly_typed_import_is_one_clear_error(config: Config, data: dict[str, Any]) -> None:
    import json

    with chinwag.Client(config) as client, pytest.raises(InputError, match="Not a chinwag"):
        client.conversations.import_json(json.dumps(data))


async def test_what_can_fail_is_checked_before_the_question_is_stored(
    server: FakeOpenAI, home: Path
) -> None:
    bots = home / "bots"
    bots.mkdir(parents=True)
    (bots / "tooly.yaml").write_text("name: Tooly\ntools: [no_such_tool]\n")

    def not_a_function(x: object) -> None: ...

    async with AsyncClient(make_config(server)) as client:
        with pytest.raises(chinwag.ConfigError, match="no_such_tool"):
            await client.ask("hi", bot="tooly")
        with pytest.raises(InputError):
            await client.ask("hi", tools=["not a function"])  # type: ignore[list-item]
        assert await client.conversations.list() == []
    assert server.requests == []


async def test_a_failure_after_the_question_is_stored_ends_in_a_stored_answer(
    server: FakeOpenAI,
) -> None:
    server.script(Script(status=400, error="context too long"))
    async with AsyncClient(make_config(server, **{"providers.openai.max_retries": 0})) as client:
        with pytest.raises(chinwag.BadRequestError) as caught:
            await client.ask("hi")
        partial = caught.value.partial
        assert partial is not None
        assert partial.status == "error"
        question, answer = await client.conversations.history(partial.conversation_id)
    assert (question.content, answer.status) == ("hi", "error")
    assert "context too long" in (answer.error or "")


async def test_an_error_event_is_data_that_rebuilds_its_error(
    config: Config, server: FakeOpenAI
) -> None:
    config.set("providers.openai.max_retries", 0)
    server.script(Script(status=429, headers={"retry-after": "120"}))
    async with AsyncClient(config) as client:
        events: list[object] = []

        async def consume() -> None:
            async for event in client.stream("hi").events():
                events.append(event)

        with pytest.raises(chinwag.RateLimitError) as caught:
            await consume()
    error_event = events[-1]
    assert isinstance(error_event, ErrorEvent)
    # As a server would send it, and a remote client read it back.
    sent = ErrorEvent.model_validate_json(error_event.model_dump_json())
    rebuilt = chinwag.errors.error_from(sent)
    assert type(rebuilt) is chinwag.RateLimitError
    assert (rebuilt.status_code, rebuilt.retry_after) == (429, 120)
    assert str(rebuilt) == str(caught.value)
    assert rebuilt.partial == caught.value.partial
    assert rebuilt.partial is not None


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_the_async_client_runs_under_trio(server: FakeOpenAI, anyio_backend: str) -> None:
    server.script(Script(text="hello there"), Script(text="A Title"))
    async with AsyncClient(make_config(server, titles=True)) as client:
        reply = await client.ask("hi")
        await client.settle()  # the title, written in the client's task group
        assert (await client.conversations.get(reply.conversation_id)).title == "A Title"
        server.script(Script(text="one two three", chunk_delay=0.01))
        streamed = [t async for t in client.stream("go on", conversation=reply.conversation_id)]
        assert "".join(streamed) == "one two three"
        history = await client.conversations.history(reply.conversation_id)
    assert [m.status for m in history] == ["complete"] * 4


def test_a_deeply_nested_import_is_one_clear_error(config: Config) -> None:
    with chinwag.Client(config) as client, pytest.raises(InputError, match="Not a chinwag"):
        client.conversations.import_json("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("config_arg", ["x", 5, ["a"]])
def test_a_wrong_config_argument_is_one_clear_error(config_arg: Any) -> None:
    with pytest.raises(InputError, match=r"config must be a chinwag\.Config"):
        chinwag.Client(config_arg)
    with pytest.raises(InputError, match="profile must be"):
        chinwag.Client(profile=["x"])  # type: ignore[arg-type]
