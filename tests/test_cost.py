"""What turns cost: genai-prices' price for a model it knows, the config's price where one is
set, unknown (None, never 0) otherwise; on the Reply, in history, stats and the command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chinwag import AsyncClient
from chinwag.store import Store, normalize_url
from chinwag.store.schema import SCHEMA_REVISION
from chinwag.types import Usage
from tests.conftest import Runner, chinwag_env, make_config
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.anyio

TODAY = datetime.now(UTC).date()


def table_price(model: str, usage: Usage) -> float:
    """What genai-prices itself says these tokens cost (the oracle)."""
    from genai_prices import Usage as Tokens, calc_price

    tokens = Tokens(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens)
    return float(calc_price(tokens, model).total_price)


async def test_a_known_model_costs_what_genai_prices_says_and_stats_add_it_up(
    server: FakeOpenAI, store_url: str
) -> None:
    config = make_config(
        server, **{"store.url": store_url, "providers.openai.model": "gpt-4o-mini"}
    )
    async with AsyncClient(config) as client:
        first = await client.ask("How much is this question?")
        assert first.model == "gpt-4o-mini"
        assert first.usage.prompt_tokens > 0
        assert first.usage.cost == table_price("gpt-4o-mini", first.usage)
        assert first.usage.cost > 0
        second = await client.ask(
            "And this one, with more words in it?", conversation=first.conversation_id
        )
        assert second.usage.cost == table_price("gpt-4o-mini", second.usage)
        # The cost is kept with the answer.
        history = await client.conversations.history(first.conversation_id)
        assert [m.usage.cost for m in history if m.usage] == [
            first.usage.cost,
            second.usage.cost,
        ]
        day = await client.stats.day()
        assert day.unpriced == 0
        assert day.cost == pytest.approx(first.usage.cost + second.usage.cost)
        total = await client.stats.total()
        assert total.cost == day.cost


@pytest.mark.parametrize("model", ["gpt-4o-mini", "deepseek-chat", "gemini-2.5-pro"])
@pytest.mark.parametrize(("tokens_in", "tokens_out"), [(10, 7), (123_457, 98_765), (250_000, 1)])
def test_every_price_is_the_table_s_linear_or_tiered_by_prompt_size(
    model: str, tokens_in: int, tokens_out: int
) -> None:
    from chinwag.config import ProviderSettings
    from chinwag.prices import turn_cost

    usage = Usage(prompt_tokens=tokens_in, completion_tokens=tokens_out)
    where = ProviderSettings(base_url="http://127.0.0.1:9/v1")  # a URL the table lacks
    for _ in range(2):  # the first prices from the table, the next from what it learnt
        assert turn_cost(model, usage, price=None, provider=where) == table_price(model, usage)


async def test_an_unknown_model_costs_unknown_not_zero_and_a_mix_says_so(
    server: FakeOpenAI, store_url: str
) -> None:
    config = make_config(server, **{"store.url": store_url})
    async with AsyncClient(config) as client:
        unknown = await client.ask("hi")
        assert unknown.model == "test-model"
        assert unknown.usage.cost is None
        history = await client.conversations.history(unknown.conversation_id)
        assert history[-1].usage is not None
        assert history[-1].usage.cost is None
        day = await client.stats.day()
        assert (day.requests, day.unpriced, day.cost) == (1, 1, None)
        # A known model beside it: the known part's cost, and how many had no price.
        known = await client.ask("priced", model="gpt-4o-mini")
        assert known.usage.cost is not None
        stats = await client.stats.usage()
        assert stats.total.requests == 2
        assert stats.total.unpriced == 1
        assert stats.total.cost == pytest.approx(known.usage.cost)
        assert stats.items[-1].cost == stats.total.cost
        # Each model's own: its requests and what they cost.
        by_model = {
            m: (await client.stats.usage(model=m)).total for m in ("gpt-4o-mini", "test-model")
        }
        assert (by_model["gpt-4o-mini"].requests, by_model["gpt-4o-mini"].unpriced) == (1, 0)
        assert by_model["gpt-4o-mini"].cost == pytest.approx(known.usage.cost)
        assert (by_model["test-model"].requests, by_model["test-model"].cost) == (1, None)
        # A day without use spent nothing: that is known.
        quiet = await client.stats.day("2020-01-01")
        assert (quiet.requests, quiet.cost) == (0, 0.0)


async def test_a_table_that_cannot_be_read_leaves_the_cost_unknown_not_the_turn_failed(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when a process has no file descriptors left to import genai-prices with.
    from chinwag import prices

    def unreadable(key: object) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(prices, "_lookup", unreadable)
    async with AsyncClient(make_config(server)) as client:
        reply = await client.ask("priced", model="gpt-4o-mini")
        day = await client.stats.day()
    assert reply.text == "You said: priced"
    assert reply.usage.cost is None
    assert (day.requests, day.unpriced) == (1, 1)


async def test_the_config_s_price_wins_over_the_table_and_prices_unknown_models(
    server: FakeOpenAI,
) -> None:
    config = make_config(
        server,
        **{
            "providers.openai.model": "gpt-4o-mini",
            "models": {
                "gpt-4o-mini": {"price": {"input": 1.0, "output": 2.0}},
                "test-model": {"price": {"input": 3.0, "output": 0.5}},
            },
        },
    )
    async with AsyncClient(config) as client:
        reply = await client.ask("our own deployment")
        u = reply.usage
        assert u.cost == pytest.approx((u.prompt_tokens * 1.0 + u.completion_tokens * 2.0) / 1e6)
        assert u.cost != table_price("gpt-4o-mini", u)
        private = await client.ask("a private model", model="test-model")
        p = private.usage
        assert p.cost == pytest.approx((p.prompt_tokens * 3.0 + p.completion_tokens * 0.5) / 1e6)
        assert u.cost is not None
        assert p.cost is not None
        assert (await client.stats.day()).cost == pytest.approx(u.cost + p.cost)


async def test_turns_not_kept_are_priced_in_the_stats_too(server: FakeOpenAI) -> None:
    config = make_config(server, **{"providers.openai.model": "gpt-4o-mini"})
    async with AsyncClient(config) as client:
        reply = await client.chat([{"role": "user", "content": "not kept"}], keep=False)
        assert reply.usage.cost == table_price("gpt-4o-mini", reply.usage)
        assert (await client.stats.day()).cost == reply.usage.cost


async def test_turns_rolled_up_before_costs_were_kept_count_as_unpriced(store_url: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine, text

    from chinwag.store.store import migrations

    engine = create_engine(normalize_url(store_url))
    with engine.begin() as conn:
        command.upgrade(migrations(conn), "0005")
        conn.execute(text("INSERT INTO users (name, created_at) VALUES ('old', '2026-01-01')"))
        conn.execute(
            text(
                "INSERT INTO usage_daily (user_id, day, bot_uid, model, requests, errors,"
                " prompt_tokens, completion_tokens, prompt_words, completion_words)"
                " VALUES (1, :day, 'default', 'gpt-4o-mini', 3, 0, 30, 10, 20, 8)"
            ),
            {"day": TODAY},
        )
    engine.dispose()
    store = await Store.open(store_url)
    try:
        assert await store.schema_revision() == SCHEMA_REVISION
        (row,) = await store.usage_by_day(1, TODAY, TODAY)
        assert row[0] == TODAY
        assert row[1:] == (3, 0, 30, 10, 20, 8, 3, 0.0)  # the 3 requests: unpriced
    finally:
        await store.close()


def test_usage_and_stats_in_the_command_show_the_cost(
    run: Runner, server: FakeOpenAI, home: Path
) -> None:
    unknown = run("--usage", "hi")
    assert "cost unknown" in unknown.stderr
    priced = Runner(chinwag_env(home, server, CHINWAG_MODEL="gpt-4o-mini"))
    known = priced("--usage", "hello there")
    assert "model gpt-4o-mini" in known.stderr
    found = re.search(r"usage: (\d+) tokens in, (\d+) out", known.stderr)
    assert found is not None
    tokens = Usage(prompt_tokens=int(found[1]), completion_tokens=int(found[2]))
    cost = table_price("gpt-4o-mini", tokens)
    assert f"cost ${cost:.6f}" in known.stderr
    stats = run("stats").stdout
    assert "cost" in stats.splitlines()[0]
    total = next(line for line in stats.splitlines() if line.startswith("total"))
    assert total.split()[1] == "2"
    assert total.split()[-2:] == [f"${cost:.6f}", "1"]  # the priced one's cost; 1 unpriced
    lines = run("stats", "--model", "gpt-4o-mini").stdout.splitlines()
    total = next(line for line in lines if line.startswith("total"))
    assert total.split()[1] == "1"  # its one request
    assert total.split()[-2:] == [f"${cost:.6f}", "0"]
    listed = run("conversations", "list").stdout
    assert f"${cost:.6f}" in listed  # the priced conversation says what it cost
    assert "unknown" in listed  # and the other, whose model has no price, that it is not known


def test_genai_prices_loads_only_when_a_turn_is_priced(tmp_path: Path) -> None:
    code = (
        "import sys, chinwag\n"
        "chinwag.Client\n"
        "import chinwag.cli, chinwag.engine, chinwag.answer\n"
        "print('genai_prices' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    env = {**os.environ, "CHINWAG_HOME": str(tmp_path)}
    cli = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "chinwag", "--help"],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    assert "genai_prices" not in cli.stderr


async def test_each_conversation_says_what_its_answers_cost_every_branch_counted(
    server: FakeOpenAI, store_url: str
) -> None:
    priced = {"models": {"test-model": {"price": {"input": 3.0, "output": 0.5}}}}
    config = make_config(server, **{"store.url": store_url, **priced})
    async with AsyncClient(config) as client:
        empty = await client.conversations.create()
        assert (empty.cost, empty.unpriced) == (0.0, 0)
        first = await client.ask("What does this cost?")
        second = await client.ask("And now?", conversation=first.conversation_id)
        again = await client.conversations.retry(first.conversation_id)  # a branch: it counts
        spent = [r.usage.cost for r in (first, second, again)]
        assert all(c is not None and c > 0 for c in spent)
        found = await client.conversations.get(first.conversation_id)
        assert found.cost == pytest.approx(sum(c for c in spent if c is not None))
        assert found.unpriced == 0
        # A model with no known price in the same conversation: counted, not priced.
        await client.ask("Unpriced", conversation=first.conversation_id, model="other-model")
        listed = {c.id: c for c in await client.conversations.list()}
        assert listed[first.conversation_id].cost == found.cost
        assert listed[first.conversation_id].unpriced == 1
        # Only unpriced answers: unknown, never 0.
        other = await client.ask("Nothing known", model="other-model")
        alone = await client.conversations.get(other.conversation_id)
        assert (alone.cost, alone.unpriced) == (None, 1)
        assert listed[empty.id].cost == 0.0
        page = await client.conversations.export(first.conversation_id, format="markdown")
        assert f"*Cost: ${found.cost:.6f} + 1 unpriced*" in page
