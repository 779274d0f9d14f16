"""chinwag.compat.ablt: aBLT's ABLTApi, ABLTApi_async, DoneException and schemas, tested
first by running every example of its seed document (002_...) in order, with only their
imports and placeholders changed."""

from __future__ import annotations

import ast
import logging
import socket
import ssl
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chinwag import Client
from chinwag.compat.ablt import ABLTApi, ABLTApi_async, DoneException
from chinwag.compat.ablt.schemas import (
    BotSchema,
    BotsSchema,
    StatisticItemSchema,
    StatisticsSchema,
    StatisticTotalSchema,
)
from chinwag.errors import (
    AccessError,
    ConfigError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ServerConnectionError,
)
from tests.conftest import Place, Served
from tests.fake_openai import FakeOpenAI, Script
from tests.seed_examples import Example, rewrite_imports, run, seed_text, text_examples
from tests.tls import tls_front

DOCUMENT = "002_34aead2262a7f6d8.txt"
IMPORTS = {
    "ablt_python_api": "chinwag.compat.ablt",
    "ablt_python_api.schemas": "chinwag.compat.ablt.schemas",
}
# The document's own bot ids, made a bot before the examples run (instead of rewritten).
UID, SLUG, NAME = "F0b98A09-c5ed-1197-90F3-BBfF1DBb28ee", "omni", "Miles Hiker"
# Names the document uses but never imports: its SSL example calls ABLTApi_async, and
# `ABLTApl`, its misspelling of ABLTApi.
UNIMPORTED = "from chinwag.compat.ablt import ABLTApi_async, ABLTApi as ABLTApl\n"


def examples() -> list[Example]:
    found = text_examples(seed_text(DOCUMENT))
    assert len(found) == 21  # the page's code lines, in 21 runs between its prose
    return [Example(rewrite_imports(e.code, IMPORTS), e.line) for e in found]


def today() -> str:
    return datetime.now(UTC).date().isoformat()


@pytest.fixture
def omni(place: Place, home: Path) -> None:
    """The document's bot, as a bot file (of this process, or of the server): everyone's, as
    an aBLT account's bots are every user_id's (a bot one chinwag user saves is theirs)."""
    where = place.served.home if place.served else home
    (where / "bots").mkdir(parents=True, exist_ok=True)
    (where / "bots" / f"{SLUG}.yaml").write_text(
        f"uid: {UID}\nname: {NAME}\ndescription: Omni\nmodel: other-model\n"
    )


@pytest.fixture
def api(place: Place) -> Iterator[ABLTApi]:
    with ABLTApi() as made:
        yield made


def token_of_user_42(place: Place, monkeypatch: pytest.MonkeyPatch) -> str:
    """The examples' token. In-process none is needed. Against a server a key acts as its
    own user, and the examples pass user_id=42: so the token is a key of user 42, which is
    also ABLT_BEARER_TOKEN, where aBLT's `ABLTApi()` finds it."""
    if place.served is None:
        return "placeholder-token"
    key = place.served.key_for("42")
    monkeypatch.setenv("ABLT_BEARER_TOKEN", key)
    return key


def test_the_imports_are_all_that_changes() -> None:
    original = text_examples(seed_text(DOCUMENT))
    for before, after in zip(original, examples(), strict=True):
        for a, b in zip(before.code.splitlines(), after.code.splitlines(), strict=True):
            assert a == b or (a.startswith("from ablt_python_api") and "chinwag.compat.ablt" in b)


def test_every_example_of_the_document_runs_and_means_what_it_says(
    omni: None, server: FakeOpenAI, place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = logging.getLogger("your_logger")
    names: dict[str, Any] = {
        "YOUR_ABLT_API_TOKEN": token_of_user_42(place, monkeypatch),
        "your_logger": logger,
        "BOT_UID": UID,
        "BOT_SLUG": SLUG,
    }
    found = examples()
    try:
        _walk(found, names, server, logger, place)
    finally:
        for value in names.values():
            if isinstance(value, ABLTApi):
                value.close()


def _walk(
    found: list[Example], ns: dict[str, Any], server: FakeOpenAI, logger: Any, place: Place
) -> None:
    def step(index: int, code: str | None = None) -> str:
        example = found[index] if code is None else Example(code, found[index].line)
        return run(example, ns, DOCUMENT).getvalue()

    # Usage: a client with a token, without one, with a logger of one's own.
    step(0)
    assert isinstance(ns["api"], ABLTApi)
    step(1)
    assert ns["api"].logger is logger
    # Bots: the list, as dicts and as the schema; one by uid, slug and name.
    step(2)
    assert {b["slug"] for b in ns["bots"]} == {"default", SLUG}
    step(3)
    assert all(isinstance(b, BotsSchema) for b in ns["bots"])
    omni = next(b for b in ns["bots"] if b.slug == SLUG)
    assert (omni.uid, omni.name, omni.model) == (UID, NAME, "other-model")
    for index in (4, 5, 6):
        step(index)
        assert ns["bot"] == omni.model_dump()
    # Chat: prompt to a bot by uid, then by slug; the generator's first item is the answer.
    step(7)
    assert ns["str_response"] == "You said: Hello, bot!"
    assert server.requests[-1]["model"] == "other-model"  # omni's model
    # A message list keeps the context: the generator runs when iterated.
    step(8)
    asked = len(server.requests)
    assert next(ns["response"]) == "You said: What do I like to eat?"
    assert len(server.requests) == asked + 1
    assert [m["content"] for m in server.requests[-1]["messages"][1:]] == [
        "I like to eat pizza", "Hello, I like pizza too!", "What do I like to eat?",
    ]  # fmt: skip
    # The document's system-message example ends in a comma, so it makes a tuple: it only
    # assigns, and the system message's meaning is tested on its own below.
    step(9)
    assert isinstance(ns["messages"], tuple)
    assert ns["messages"][0][0]["role"] == "system"
    # More options: language, max_words, user_id, use_search.
    step(10)
    assert next(ns["response"]) == "You said: Hello, bot!"
    sent = server.requests[-1]
    assert "Arabic" in sent["messages"][0]["content"]
    assert "100 words" in sent["messages"][0]["content"]
    assert sent["max_tokens"] == 175  # 100 words: 5/3 tokens each, and 8 to finish
    # stream=False: the whole answer, once.
    step(11)
    assert list(ns["response"]) == ["You said: Hello, bot!"]
    # Streaming: the chunks as they come, and DoneException ends it as the example expects.
    server.scripts.append(Script(chunks=["Hello", ", ", "reader", "!"]))
    out = run(found[12], ns, DOCUMENT)
    assert out.writes == ["Hello", ", ", "reader", "!"]
    assert server.requests[-1]["stream"] is True
    # Statistics grew with those chats: today's, user 42's (the options example's turn).
    step(13)
    today_total = ns["statistics_for_today"]["total"]
    assert today_total["total_tokens"] > 0
    assert ns["statistics_for_today"]["items"][0]["date"] == today()
    assert ns["statistics_for_range"] == {  # 633 days, none of them used
        "total": dict.fromkeys(today_total, 0),
        "items": [],
    }
    user_42 = ns["statistics_for_user"]["total"]
    if place.remote:  # the token is user 42's key: all its turns are 42's
        assert user_42 == today_total
        assert user_42["response_words"] >= 4  # "You said: Hello, bot!" among them
    else:
        assert 0 < user_42["total_tokens"] < today_total["total_tokens"]
        assert user_42["response_words"] == 4  # "You said: Hello, bot!"
    step(14)
    assert isinstance(ns["statistics"], StatisticsSchema)
    assert ns["statistics"].total.total_tokens == today_total["total_tokens"]
    step(15)
    assert ns["statistics_for_today"]["total_tokens"] == today_total["total_tokens"]
    assert ns["statistics_for_specific_day"]["date"] == "2022-02-24"
    assert ns["statistics_for_specific_day"]["total_tokens"] == 0
    assert ns["statistics_for_user"]["total_tokens"] == user_42["total_tokens"]
    step(16)
    assert isinstance(ns["statistics"], StatisticItemSchema)
    step(17)
    assert ns["statistics_for_today"] == today_total
    assert ns["statistics_for_specific_day"]["total_tokens"] == 0
    assert ns["statistics_for_user"] == user_42
    step(18)
    assert isinstance(ns["statistics"], StatisticTotalSchema)
    # SSL: both clients take aBLT's TLS options (in-process there is no TLS to verify).
    step(19, UNIMPORTED + found[19].code)
    assert ns["sslcontext"].verify_mode == ssl.CERT_NONE
    # Health: the example's expression, evaluated.
    assert isinstance(ast.parse(found[20].code).body[0], ast.Expr)
    assert eval(found[20].code, ns) is True


# -- chat -----------------------------------------------------------------------------------


def test_a_system_message_in_messages_reaches_the_model(api: ABLTApi, server: FakeOpenAI) -> None:
    messages = [
        {"content": "You are a bibliophile bot, you know everything about literature",
         "role": "system"},
        {"content": "Who is author of 'The Sirens of Titan'?", "role": "user"},
    ]  # fmt: skip
    assert list(api.chat(messages=messages)) == [
        "You said: Who is author of 'The Sirens of Titan'?"
    ]
    assert server.requests[-1]["messages"][0] == {
        "role": "system",
        "content": messages[0]["content"],
    }


def test_a_streamed_message_list_ends_with_done_exception(api: ABLTApi, server: FakeOpenAI) -> None:
    server.scripts.append(Script(chunks=["Vonnegut", "."]))
    chunks = api.chat(messages=[{"role": "user", "content": "Who?"}], stream=True)
    assert next(chunks) == "Vonnegut"
    assert next(chunks) == "."
    with pytest.raises(DoneException):
        next(chunks)


def test_leaving_a_stream_early_stores_the_partial_answer(api: ABLTApi, server: FakeOpenAI) -> None:
    server.scripts.append(Script(chunks=[f"w{n} " for n in range(100)], chunk_delay=0.05))
    chunks = api.chat(prompt="Count", stream=True)
    assert next(chunks) == "w0 "
    chunks.close()  # as a `for` loop left with break leaves it, once collected
    with Client() as client:
        latest = client.conversations.latest()
        assert latest is not None
        answer = client.conversations.history(latest.id)[-1]
    assert answer.status == "partial"
    assert answer.content.startswith("w0 ")


def test_a_failing_provider_raises_a_clear_error(api: ABLTApi, server: FakeOpenAI) -> None:
    server.scripts.append(Script(status=503, error="overloaded"))
    with pytest.raises(ProviderError, match="overloaded"):
        next(api.chat(prompt="Hi"))


@pytest.mark.parametrize(
    ("arguments", "why"),
    [
        ({}, "needs prompt= or messages="),
        ({"prompt": "a", "messages": []}, "prompt= or messages=, not both"),
        ({"prompt": "a", "bot_uid": "x", "bot_slug": "y"}, "not both"),
        ({"prompt": 5}, "prompt must be text"),
        ({"messages": "Hi"}, "messages must be a list"),
        ({"prompt": "a", "stream": "yes"}, "stream must be True or False"),
        ({"prompt": "a", "user_id": "42"}, "user_id must be an int"),
        ({"prompt": "a", "user_id": True}, "user_id must be an int"),
        ({"prompt": "a", "language": 7}, "language must be text"),
        ({"prompt": "a", "use_search": "on"}, "search must be True, False or None"),
        ({"prompt": "a", "bot_slug": 3}, "bot_slug must be text"),
    ],
)
def test_wrong_arguments_fail_at_the_call_with_a_clear_error(
    api: ABLTApi, server: FakeOpenAI, arguments: dict[str, Any], why: str
) -> None:
    with pytest.raises(InputError, match=why):
        api.chat(**arguments)
    assert server.requests == []


def test_an_unknown_bot_is_an_error_naming_the_bots(api: ABLTApi) -> None:
    with pytest.raises(NotFoundError, match=r"No bot 'nobody'\. Known bots: default"):
        next(api.chat(bot_slug="nobody", prompt="Hi"))


# -- bots, statistics, health -----------------------------------------------------------------


def test_finding_bots(api: ABLTApi, omni: None) -> None:
    assert api.find_bot_by_uid("no-such-uid") is None
    assert api.find_bot_by_slug("nobody") is None
    assert api.find_bot_by_name("Nobody") is None
    assert BotSchema.model_validate(api.find_bot_by_slug("default")).model == "default"
    with Client() as client:
        client.bots.create(name=NAME, slug="second-hiker")
    with pytest.raises(InputError, match="omni, second-hiker"):
        api.find_bot_by_name(NAME)  # a shared name: say which slugs, instead of guessing
    with pytest.raises(InputError):
        api.find_bot_by_uid(42)  # type: ignore[arg-type]


def test_statistics_grow_by_each_chat_and_stay_apart_per_user(
    api: ABLTApi, server: FakeOpenAI, place: Place
) -> None:
    before = api.get_total_usage_statistics()
    assert before["total_tokens"] == 0
    next(api.chat(prompt="Hello there"))
    with Client() as client:
        latest = client.conversations.latest()
        assert latest is not None
        usage = client.conversations.history(latest.id)[-1].usage
    assert usage is not None
    after = api.get_total_usage_statistics()
    assert after["original_tokens"] == usage.prompt_tokens
    assert after["response_tokens"] == usage.completion_tokens
    assert after["total_tokens"] == usage.prompt_tokens + usage.completion_tokens
    assert after["enchancement_tokens"] == after["enchancement_words"] == 0
    other, as_other = 7, api
    if place.served is not None:  # a key acts as its user: user 7's turns need user 7's key
        with pytest.raises(PermissionDeniedError, match="user='7'"):
            next(api.chat(prompt="Hi", user_id=7))
        with pytest.raises(PermissionDeniedError, match="user='7'"):
            api.get_total_usage_statistics(user_id=7)
        other = uuid.uuid4().int % 10**12  # a user of this test's own, named by a number
        as_other = ABLTApi(bearer_token=place.served.key_for(str(other)))
    assert as_other.get_total_usage_statistics(user_id=other)["total_tokens"] == 0
    next(as_other.chat(prompt="Hi", user_id=other))
    assert as_other.get_total_usage_statistics(user_id=other)["total_tokens"] > 0
    assert api.get_total_usage_statistics() == after  # the other's turn is not this user's
    if as_other is not api:
        as_other.close()
    assert api.get_total_usage_statistics(user_id=-1) == after  # aBLT's default user_id
    span = api.get_total_usage_statistics(start_date="2020-01-01", end_date=today())
    assert span == after
    with pytest.raises(InputError, match="not both"):
        api.get_total_usage_statistics(date=today(), start_date=today())
    with pytest.raises(InputError, match="Not a date"):
        api.get_usage_statistics_for_day(date="yesterday")
    with pytest.raises(InputError, match="user_id must be an int"):
        api.get_usage_statistics(user_id="all")  # type: ignore[arg-type]


def test_health_check_says_false_and_logs_why_when_the_provider_is_down(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    monkeypatch.setenv("CHINWAG_MODEL", "test-model")
    with ABLTApi() as api, caplog.at_level(logging.ERROR, "chinwag.compat.ablt"):
        assert api.health_check() is False
    assert "Health check failed" in caplog.text


@pytest.mark.anyio
async def test_the_constructors_make_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """aBLT's constructor looped on a health check (up to 50 s); these touch nothing."""
    with socket.socket() as provider:
        provider.bind(("127.0.0.1", 0))
        provider.listen()
        provider.setblocking(False)
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{provider.getsockname()[1]}/v1")
        with ABLTApi(bearer_token="unused"):
            pass
        async with ABLTApi_async():
            pass
        with pytest.raises(BlockingIOError):
            provider.accept()  # nobody connected
        socket.create_connection(provider.getsockname(), timeout=5).close()
        provider.accept()[0].close()  # and this is how a connection would have shown


def test_the_constructor_checks_its_arguments(library_env: FakeOpenAI) -> None:
    with pytest.raises(InputError, match=r"logging\.Logger"):
        ABLTApi(logger="api.log")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"ssl\.SSLContext"):
        ABLTApi(ssl_context=True)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="ssl_verify"):
        ABLTApi_async(ssl_verify="no")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="bearer_token must be text"):
        ABLTApi(bearer_token=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="http:// or https://"):
        ABLTApi(bearer_token="cw-key", base_url="ftp://127.0.0.1:8000")


# -- the async client -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_async_client_makes_the_same_calls_awaited(
    server: FakeOpenAI, omni: None, place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ABLTApi_async(bearer_token=token_of_user_42(place, monkeypatch)) as api:
        assert await api.health_check() is True
        assert {b["slug"] for b in await api.api.get_bots()} == {"default", SLUG}
        assert (await api.find_bot_by_uid(UID) or {}).get("slug") == SLUG
        assert (await api.find_bot_by_slug(SLUG) or {}).get("uid") == UID
        assert (await api.find_bot_by_name(NAME) or {}).get("uid") == UID
        assert [t async for t in api.chat(bot_uid=UID, prompt="Hello, bot!", stream=False)] == [
            "You said: Hello, bot!"
        ]
        server.scripts.append(Script(chunks=["One", " two"]))
        received = []
        try:
            async for text in api.chat(bot_slug=SLUG, prompt="Count", stream=True):
                received.append(text)
        except DoneException:
            received.append("done")
        assert received == ["One", " two", "done"]
        messages = [{"role": "user", "content": "Hi"}]
        assert [t async for t in api.chat(messages=messages, user_id=42)] == ["You said: Hi"]
        stats = StatisticsSchema.model_validate(await api.get_usage_statistics())
        assert stats.total.total_tokens > 0
        assert stats.items[0].date.isoformat() == today()
        user = StatisticItemSchema.model_validate(
            await api.get_usage_statistics_for_day(user_id=42)
        )
        if place.remote:  # the token is user 42's key: today's turns are all 42's
            assert user.total_tokens == stats.total.total_tokens
        else:
            assert 0 < user.total_tokens < stats.total.total_tokens
        total = StatisticTotalSchema.model_validate(await api.get_total_usage_statistics())
        assert total.total_tokens == stats.total.total_tokens
        with pytest.raises(InputError, match="not both"):
            api.chat(prompt="a", messages=messages)


# -- against a chinwag server: base_url and bearer_token ------------------------------------------


def numbered_user(served: Served) -> tuple[int, str]:
    """A server user of the test's own named by a number, as aBLT's user_ids are, and a key."""
    user = uuid.uuid4().int % 10**12
    return user, served.key_for(str(user))


def test_base_url_and_bearer_token_chat_on_the_server(
    served: Served, library_env: FakeOpenAI
) -> None:
    user, key = numbered_user(served)
    with ABLTApi(bearer_token=key, base_url=served.url) as api:
        assert api.health_check() is True
        assert list(api.chat(prompt="Hello, server!", user_id=user)) == ["You said: Hello, server!"]
        statistics = api.get_total_usage_statistics(user_id=user)
        assert statistics == api.get_total_usage_statistics()  # user_id is the key's user
        assert statistics["total_tokens"] > 0
    with served.store() as store:  # the server's database holds the turn, and its usage
        latest = store.conversations.latest(user=user)
        assert latest is not None
        history = store.conversations.history(latest.id, user=user)
        assert [m.content for m in history] == ["Hello, server!", "You said: Hello, server!"]
        assert store.stats.total(user=user).total_tokens == statistics["total_tokens"]


def test_a_wrong_bearer_token_fails_each_call_with_access_error(
    served: Served, library_env: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    with ABLTApi(bearer_token="cw-not-a-key", base_url=served.url) as api:  # nothing sent yet
        with pytest.raises(AccessError, match="The API key is not valid"):
            api.get_bots()
        answer = api.chat(prompt="Hi")  # a generator: the turn runs when it is read
        with pytest.raises(AccessError, match="The API key is not valid"):
            next(answer)
        with pytest.raises(AccessError):
            api.get_usage_statistics()
        with caplog.at_level(logging.ERROR, "chinwag.compat.ablt"):
            assert api.health_check() is False
    assert "the server refused the key" in caplog.text
    assert library_env.requests == []


def test_one_key_cannot_file_or_read_another_user_s_usage(
    served: Served, library_env: FakeOpenAI
) -> None:
    alice, alice_key = numbered_user(served)
    bob, bob_key = numbered_user(served)
    with ABLTApi(bearer_token=alice_key, base_url=served.url) as as_alice:
        next(as_alice.chat(prompt="Alice's question", user_id=alice))
    with ABLTApi(bearer_token=bob_key, base_url=served.url) as as_bob:
        assert as_bob.get_total_usage_statistics()["total_tokens"] == 0
        with pytest.raises(PermissionDeniedError, match=f"user='{alice}' is another user"):
            next(as_bob.chat(prompt="As Alice", user_id=alice))
        with pytest.raises(PermissionDeniedError, match=f"user='{alice}'"):
            as_bob.get_usage_statistics(user_id=alice)
        assert as_bob.get_total_usage_statistics()["total_tokens"] == 0  # nothing was filed
    with served.store() as store:
        assert store.conversations.list(user=bob) == []
    # An admin's key may read anyone's statistics, as aBLT's account holder read its users'.
    with ABLTApi(bearer_token=served.admin_key, base_url=served.url) as admin:
        assert admin.get_total_usage_statistics(user_id=alice)["total_tokens"] > 0
        assert admin.get_total_usage_statistics(user_id=bob)["total_tokens"] == 0


def test_ssl_verify_and_ssl_context_reach_a_server_behind_tls(
    served: Served, library_env: FakeOpenAI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, key = served.new_user()
    with tls_front(served.url, tmp_path) as (url, cert):
        with (
            ABLTApi(bearer_token=key, base_url=url) as strict,
            caplog.at_level(logging.ERROR, "chinwag.compat.ablt"),
        ):
            assert strict.health_check() is False  # no CA signed it
            with pytest.raises(ServerConnectionError, match="certificate"):
                strict.get_bots()
        assert "certificate" in caplog.text
        with ABLTApi(bearer_token=key, base_url=url, ssl_verify=False) as unverified:
            assert list(unverified.chat(prompt="Over TLS")) == ["You said: Over TLS"]
        trusting = ssl.create_default_context(cafile=str(cert))
        with ABLTApi(bearer_token=key, base_url=url, ssl_context=trusting) as verified:
            assert verified.health_check() is True
            assert {b["slug"] for b in verified.get_bots()} >= {"default"}
