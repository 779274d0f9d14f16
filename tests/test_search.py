"""Web search against a local server that speaks SearXNG's JSON API."""

from __future__ import annotations

from typing import Any

import pytest

from chinwag import AsyncClient, Bot, Config
from chinwag.types import SearchEvent, TextDelta
from tests.conftest import Runner, make_config
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.anyio

RESULTS = [
    {"title": f"Page {n}", "url": f"https://example.invalid/{n}", "content": f"Fact number {n}."}
    for n in range(1, 8)
]


def search_config(server: FakeOpenAI, **values: Any) -> Config:
    settings = {
        "search.url": server.base_url.removesuffix("/v1"),
        "search.allow_private": True,  # the test server is on loopback
        "search.results": 3,
        **values,
    }
    return make_config(server, **settings)


async def test_results_go_into_the_context_and_the_reply_carries_them(
    server: FakeOpenAI,
) -> None:
    server.search_results = RESULTS
    async with AsyncClient(search_config(server)) as client:
        stream = client.stream("What is new?", search=True)
        events = [event async for event in stream.events()]
        reply = stream.reply
        history = await client.conversations.history(reply.conversation_id)
    assert server.searches == ["What is new?"]
    steps = [e for e in events if isinstance(e, SearchEvent)]
    assert [s.step for s in steps] == ["searching", "results"]
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert events.index(steps[-1]) < first_text  # search steps stream before the answer
    system = server.requests[-1]["messages"][0]["content"]
    assert "[1] Page 1 (https://example.invalid/1)\nFact number 1." in system
    assert "[3] Page 3" in system
    assert "Page 4" not in system  # search.results = 3
    assert [s.url for s in reply.sources] == [r["url"] for r in RESULTS[:3]]
    assert history[-1].meta["sources"][0]["title"] == "Page 1"
    assert history[0].meta == {"search": True}


async def test_the_bot_search_flag_and_the_call_override(server: FakeOpenAI) -> None:
    server.search_results = RESULTS[:1]
    searcher = Bot(uid="s", slug="searcher", name="Searcher", search=True)
    async with AsyncClient(search_config(server)) as client:
        with_bot = await client.ask("bot searches", bot=searcher)
        without = await client.ask("not this time", bot=searcher, search=False)
        plain = await client.ask("plain question")
    assert server.searches == ["bot searches"]
    assert len(with_bot.sources) == 1
    assert without.sources == plain.sources == []


async def test_a_loopback_search_url_is_refused_unless_allowed(server: FakeOpenAI) -> None:
    server.search_results = RESULTS
    config = search_config(server, **{"search.allow_private": False})
    async with AsyncClient(config) as client:
        stream = client.stream("anything", search=True)
        events = [event async for event in stream.events()]
    failed = [e for e in events if isinstance(e, SearchEvent) and e.step == "failed"]
    assert failed
    assert "private or loopback" in (failed[0].error or "")
    assert "search.allow_private" in (failed[0].error or "")
    assert server.searches == []  # nothing was sent there
    assert stream.reply.text == "You said: anything"  # the turn still answers


async def test_a_broken_or_missing_search_never_fails_the_turn(server: FakeOpenAI) -> None:
    server.search_status = 500
    async with AsyncClient(search_config(server)) as client:
        events = [e async for e in client.stream("q", search=True).events()]
    failed = next(e for e in events if isinstance(e, SearchEvent) and e.step == "failed")
    assert "answered 500" in (failed.error or "")
    async with AsyncClient(make_config(server)) as client:  # no search.url at all
        events = [e async for e in client.stream("q", search=True).events()]
    failed = next(e for e in events if isinstance(e, SearchEvent) and e.step == "failed")
    assert "set search.url" in (failed.error or "")


def test_ask_search_prints_sources(run: Runner, server: FakeOpenAI) -> None:
    server.search_results = RESULTS[:2]
    run.env["CHINWAG_SEARCH__URL"] = server.base_url.removesuffix("/v1")
    run.env["CHINWAG_SEARCH__ALLOW_PRIVATE"] = "true"
    out = run("--search", "news?")
    assert out.stdout.endswith(
        "Sources:\n[1] Page 1: https://example.invalid/1\n[2] Page 2: https://example.invalid/2\n"
    )
    assert server.searches == ["news?"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8888/",
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://172.16.5.4/",
        "http://169.254.169.254/",  # the cloud metadata service
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://localhost/",
    ],
)
async def test_private_addresses_are_refused(url: str) -> None:
    from chinwag.errors import ConfigError
    from chinwag.search import check_public

    with pytest.raises(ConfigError, match="private or loopback"):
        await check_public(url, allow_private=False)
    await check_public(url, allow_private=True)  # config can allow them explicitly


async def test_a_public_address_is_allowed() -> None:
    from chinwag.search import check_public

    await check_public("https://93.184.215.14/", allow_private=False)  # nothing is sent
