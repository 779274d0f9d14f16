"""Money budgets on server keys (a day's, a month's), through a real `chinwag serve` on
127.0.0.1, the `chinwag keys` command and the clients: given, shown and checked; reserved
at the worst case and settled to the cost; refused in the OpenAI envelope; held across two
workers on PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import chinwag
from chinwag.errors import InputError, LimitError
from tests.conftest import Runner
from tests.fake_openai import FakeOpenAI, Script
from tests.server import chinwag_serve
from tests.test_server_accounts import ask, auth, hang_up, new_key

# test-model's price here: 100 micro-dollars a token in, 200 a token out.
PRICE = "models:\n  test-model:\n    price: {input: 100, output: 200}\n"
ANSWER = "one two three"  # the fake's usage: 3 tokens out


def priced(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(PRICE)


def micro(usage: dict[str, Any]) -> int:
    """What a call's usage costs at PRICE, in micro-dollars."""
    return int(usage["prompt_tokens"]) * 100 + int(usage["completion_tokens"]) * 200


def spent(home: Path) -> dict[str, tuple[int, int, int]]:
    """The key windows in the SQLite store: span -> (requests, tokens, micro-dollars)."""
    db = sqlite3.connect(home / "chinwag.db")
    try:
        rows = db.execute("SELECT span, requests, tokens, cost FROM key_windows").fetchall()
    finally:
        db.close()
    return {span: (requests, tokens, cost) for span, requests, tokens, cost in rows}


def cost_today(home: Path) -> int:
    return spent(home).get("day", (0, 0, 0))[2]


def streamed_usage(response: httpx.Response) -> dict[str, Any]:
    """The usage chunk of an OpenAI stream read whole (stream_options.include_usage)."""
    for line in response.text.splitlines():
        if line.startswith("data: {") and json.loads(line[6:]).get("usage"):
            usage: dict[str, Any] = json.loads(line[6:])["usage"]
            return usage
    raise AssertionError(f"no usage in {response.text!r:.300}")


@pytest.fixture
def budgeted(run: Runner, server: FakeOpenAI, home: Path) -> Iterator[tuple[str, str]]:
    """A server where test-model has a price; its URL and alice's key with $0.01 a day."""
    priced(home)
    server.default = Script(text=ANSWER)
    key = new_key(run, "alice", "--max-cost-per-day", "0.01")
    with chinwag_serve(run.env) as (base, _):
        yield base, key


def test_budgets_are_given_in_dollars_kept_in_micro_dollars_and_checked(
    run: Runner, home: Path
) -> None:
    made = new_key(run, "alice", "--max-cost-per-day", "0.5", "--max-cost-per-month", "$12.25")
    assert made.startswith("cw-")
    assert "$0.50 a day, $12.25 a month" in run("keys", "list").stdout
    db = sqlite3.connect(home / "chinwag.db")
    try:
        stored = db.execute("SELECT cost_per_day, cost_per_month FROM api_keys").fetchall()
    finally:
        db.close()
    assert stored == [(500_000, 12_250_000)]  # exact, whatever floats would make of them
    for value in ("-1", "0", "nan", "inf", "abc", "1e12", "0.0000001", ""):
        for option in ("--max-cost-per-day", "--max-cost-per-month"):
            failed = run("keys", "create", "--user", "alice", option, value)
            assert failed.returncode != 0, (option, value)
            assert "US dollars" in failed.stderr or "micro-dollar" in failed.stderr, failed.stderr
            assert "Traceback" not in failed.stderr
    assert len(run("keys", "list").stdout.splitlines()) == 1  # none was made


def test_admins_give_budgets_over_http_and_the_remote_client_too(run: Runner) -> None:
    root = new_key(run, "root", admin=True)
    run("users", "add", "alice")
    with chinwag_serve(run.env) as (base, _):
        api = f"{base}/api/v1"
        for bad in (-1, 0, "NaN", "Infinity", "abc", 1e12, True, [1], {"usd": 1}):
            body = {"user": "alice", "cost_per_day": bad}
            refused = httpx.post(f"{api}/keys", json=body, headers=auth(root))
            assert refused.status_code == 400, (bad, refused.text)
            assert refused.json()["error"]["type"] == "invalid_request_error"
        nan = httpx.post(
            f"{api}/keys",
            content=b'{"user": "alice", "cost_per_month": NaN}',
            headers={**auth(root), "content-type": "application/json"},
        )
        assert nan.status_code == 400
        assert [k["user"] for k in httpx.get(f"{api}/keys", headers=auth(root)).json()] == ["root"]
        made = httpx.post(
            f"{api}/keys",
            json={"user": "alice", "cost_per_day": "0.10", "cost_per_month": 3},
            headers=auth(root),
        )
        assert made.status_code == 201
        assert (made.json()["cost_per_day"], made.json()["cost_per_month"]) == (0.1, 3.0)
        with chinwag.Client(base_url=base, api_key=root) as remote:
            key = remote.accounts.create_key(
                "alice", cost_per_day=Decimal("0.25"), cost_per_month=7.5
            )
            assert (key.cost_per_day, key.cost_per_month) == (0.25, 7.5)
            assert remote.accounts.get_key(key.id).cost_per_day == 0.25
            listed = {k.id: k for k in remote.accounts.list_keys(user="alice")}
            assert listed[key.id].cost_per_month == 7.5
            with pytest.raises(InputError, match="US dollars"):
                remote.accounts.create_key("alice", cost_per_day=float("nan"))
            with pytest.raises(InputError, match="US dollars"):
                remote.accounts.create_key("alice", cost_per_month=-5)


def test_a_day_s_budget_reserves_the_worst_case_settles_to_the_cost_and_then_refuses(
    budgeted: tuple[str, str], server: FakeOpenAI, home: Path
) -> None:
    base, key = budgeted
    too_big = ask(base, key, max_tokens=100_000)  # 100,000 x 200 micro-dollars: $20
    assert too_big.status_code == 400
    assert "more than the key's whole budget of $0.01 a day" in too_big.json()["error"]["message"]
    unpriced = ask(base, key, model="openai/other-model", max_tokens=5)
    assert unpriced.status_code == 400
    assert "models.other-model.price" in unpriced.json()["error"]["message"]
    assert server.requests == []
    assert cost_today(home) == 0
    costs = []
    first = ask(base, key, "what does this question cost", max_tokens=5)
    assert first.status_code == 200
    costs.append(micro(first.json()["usage"]))
    assert cost_today(home) == costs[0]  # the reservation was replaced by the cost
    streamed = ask(
        base, key, "and this one", max_tokens=5, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    assert streamed.status_code == 200
    costs.append(micro(streamed_usage(streamed)))
    assert cost_today(home) == sum(costs)
    refused, prompt = None, ""
    for i in range(20):  # bounded: each call costs over 600 micro-dollars
        prompt = f"question number {i}"
        answer = ask(base, key, prompt, max_tokens=5)
        if answer.status_code != 200:
            refused = answer
            break
        costs.append(micro(answer.json()["usage"]))
    assert refused is not None
    assert refused.status_code == 429
    assert refused.headers["x-should-retry"] == "false"
    assert 1 <= int(refused.headers["retry-after"]) <= 86_400
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "LimitError")
    assert "budget of $0.01 a day is spent" in error["message"]
    assert "midnight UTC" in error["message"]
    assert cost_today(home) == sum(costs) <= 10_000
    assert len(server.requests) == len(costs)  # the refusal never reached the model
    # The same request again, from the clients (what is left may still pay a smaller one).
    with openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=3) as sdk:
        started = time.monotonic()
        with pytest.raises(openai.RateLimitError):
            sdk.chat.completions.create(
                model="default", messages=[{"role": "user", "content": prompt}], max_tokens=5
            )
        assert time.monotonic() - started < 5  # told not to retry, it did not
    with chinwag.Client(base_url=base, api_key=key) as remote:
        with pytest.raises(LimitError, match=r"\$0\.01 a day") as raised:
            remote.ask(prompt, max_tokens=5)
        assert raised.value.should_retry is False
        assert raised.value.retry_after is not None
        assert raised.value.retry_after >= 1
    assert cost_today(home) == sum(costs)
    assert len(server.requests) == len(costs)


def test_a_month_s_budget_is_final_until_the_month_ends(
    run: Runner, server: FakeOpenAI, home: Path
) -> None:
    priced(home)
    server.default = Script(text=ANSWER)
    key = new_key(run, "alice", "--max-cost-per-day", "5", "--max-cost-per-month", "0.005")
    with chinwag_serve(run.env) as (base, _):
        answers = [ask(base, key, f"question {i}") for i in range(8)]
    # Calls that named no max_tokens were held to what the budget could pay for.
    sent = [
        int(r.get("max_tokens") or r.get("max_completion_tokens") or 0) for r in server.requests
    ]
    assert sent
    assert all(n > 0 and n * 200 < 5_000 for n in sent), sent
    codes = [a.status_code for a in answers]
    assert codes[0] == 200
    assert 429 in codes
    assert set(codes[codes.index(429) :]) == {429}
    refused = answers[codes.index(429)]
    now = datetime.now(UTC)
    first = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    message = refused.json()["error"]["message"]
    assert "budget of $0.005 a month is spent" in message
    assert f"renews on {first:%Y-%m-%d} (UTC)" in message
    assert refused.headers["x-should-retry"] == "false"
    assert abs(int(refused.headers["retry-after"]) - (first - now).total_seconds()) < 30
    used = sum(micro(a.json()["usage"]) for a in answers if a.status_code == 200)
    windows = spent(home)
    assert windows["month"][2] == windows["day"][2] == used <= 5_000


def test_a_stream_cut_mid_answer_and_a_client_that_hangs_up_pay_what_they_used(
    run: Runner, server: FakeOpenAI, home: Path
) -> None:
    priced(home)
    key = new_key(run, "alice", "--max-cost-per-day", "1")
    words = " ".join(f"word{i}" for i in range(200))
    with chinwag_serve(run.env) as (base, _):
        # The provider cuts its stream: the partial answer is what is charged.
        server.script(Script(text=words, cut_after=5))
        body = {"prompt": "tell me a story", "stream": True, "max_tokens": 400}
        cut = httpx.post(f"{base}/api/v1/chat", json=body, headers=auth(key), timeout=30)
        events = [json.loads(line[6:]) for line in cut.text.splitlines() if line[6:7] == "{"]
        assert events[-1]["type"] == "error"
        partial = events[-1]["reply"]
        assert partial["status"] == "partial"
        owed = micro(partial["usage"])
        assert 0 < owed < 400 * 200  # not the reservation: max_tokens' 400 at 200 each
        assert cost_today(home) == owed
        # The client goes away mid-answer: its prompt and the text it was sent.
        server.script(Script(text=words, chunk_delay=0.02))
        seen = hang_up(base, key, max_tokens=400)
        hung_up = 0
        for _ in range(100):  # the server settles once it notices the client has gone
            hung_up = cost_today(home) - owed
            if hung_up < 400 * 200:
                break
            time.sleep(0.1)
    assert hung_up >= -(-len(seen) // 4) * 200  # at least what was seen, at 200 a token
    assert hung_up < 400 * 200


def test_refusals_spend_nothing_a_revoked_key_stops_and_the_embedded_model_is_free(
    run: Runner, server: FakeOpenAI, home: Path, gemma: Path
) -> None:
    priced(home)
    key = new_key(run, "alice", "--max-cost-per-day", "0.01")
    env = {**run.env, "CHINWAG_PROVIDERS__LOCAL__MODEL_PATH": str(gemma)}
    with chinwag_serve(env) as (base, _):
        api = f"{base}/api/v1"
        assert ask(base, key, temperature=9).status_code == 400
        assert ask(base, key, model="openai/other-model").status_code == 400
        missing = httpx.post(
            f"{api}/conversations/{'0' * 32}/messages", json={"prompt": "x"}, headers=auth(key)
        )
        assert missing.status_code == 404
        assert server.requests == []
        assert set(spent(home).values()) <= {(0, 0, 0)}
        free = ask(base, key, model="local/gemma", max_tokens=4)
        assert free.status_code == 200, free.text
        requests, tokens, cost = spent(home)["day"]
        assert (requests, cost) == (1, 0)
        assert tokens == free.json()["usage"]["total_tokens"]
        key_id = run("keys", "list").stdout.split()[0]
        assert run("keys", "revoke", key_id).returncode == 0
        revoked = ask(base, key, max_tokens=5)
        assert revoked.status_code == 401
        assert spent(home)["day"] == (1, tokens, 0)
        assert server.requests == []


def test_another_user_cannot_see_or_touch_a_key_s_budget(
    run: Runner, server: FakeOpenAI, home: Path
) -> None:
    priced(home)
    server.default = Script(text=ANSWER)
    root = new_key(run, "root", admin=True)
    alice = new_key(run, "alice", "--max-cost-per-day", "0.01", "--max-cost-per-month", "1")
    bob = new_key(run, "bob", "--max-cost-per-day", "2")
    with chinwag_serve(run.env) as (base, _):
        api = f"{base}/api/v1"
        (mine,) = httpx.get(f"{api}/keys", headers=auth(alice)).json()
        assert (mine["cost_per_day"], mine["cost_per_month"]) == (0.01, 1.0)
        assert httpx.get(f"{api}/keys/{mine['id']}", headers=auth(alice)).json() == mine
        assert httpx.get(f"{api}/keys/{mine['id']}", headers=auth(root)).json() == mine
        nobody = "key_0000000000000000"
        for method in ("GET", "DELETE"):
            theirs = httpx.request(method, f"{api}/keys/{mine['id']}", headers=auth(bob))
            missing = httpx.request(method, f"{api}/keys/{nobody}", headers=auth(bob))
            assert theirs.status_code == missing.status_code == 404, method
            assert theirs.json()["error"]["code"] == missing.json()["error"]["code"]
            assert "0.01" not in theirs.text
        (own,) = httpx.get(f"{api}/keys", headers=auth(bob)).json()
        assert own["user"] == "bob"
        assert httpx.get(f"{api}/keys?user=alice", headers=auth(bob)).status_code == 403
        more = {"user": "bob", "cost_per_day": 1000}
        assert httpx.post(f"{api}/keys", json=more, headers=auth(bob)).status_code == 403
        # Bob spends his own budget, never alice's; her key still works.
        assert ask(base, bob, max_tokens=5).status_code == 200
        assert ask(base, alice, max_tokens=5).status_code == 200
    db = sqlite3.connect(home / "chinwag.db")
    try:
        rows = db.execute(
            "SELECT u.name, SUM(w.requests) FROM key_windows w JOIN api_keys k ON k.id = w.key_id"
            " JOIN users u ON u.id = k.user_id WHERE w.span = 'day' GROUP BY u.name"
        ).fetchall()
    finally:
        db.close()
    assert dict(rows) == {"alice": 1, "bob": 1}


@pytest.mark.postgres
def test_a_money_budget_holds_across_two_workers(
    run: Runner, server: FakeOpenAI, home: Path, postgres_url: str
) -> None:
    import psycopg

    priced(home)
    server.default = Script(text=ANSWER, delay=0.05)  # so that the calls overlap
    env = {**run.env, "CHINWAG_STORE__URL": postgres_url}
    key = new_key(Runner(env), "alice", "--max-cost-per-day", "0.01")
    with chinwag_serve(env, "--workers", "2") as (base, _):

        def one(i: int) -> tuple[int, int, httpx.Response]:
            """A spender: its status, and what its answer cost (micro-dollars)."""
            body: dict[str, Any] = {
                "model": "default", "max_tokens": 5, "stream": i % 2 == 1,
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": f"spender number {i} asks"}],
            }  # fmt: skip
            with httpx.Client() as client:  # a connection each, so both workers take some
                answer = client.post(
                    f"{base}/v1/chat/completions", json=body, headers=auth(key), timeout=60
                )
            if answer.status_code != 200:
                return answer.status_code, 0, answer
            usage = streamed_usage(answer) if i % 2 else answer.json()["usage"]
            return 200, micro(usage), answer

        with ThreadPoolExecutor(40) as pool:
            results = list(pool.map(one, range(40)))
    codes = [code for code, _, _ in results]
    assert set(codes) == {200, 429}, codes
    assert codes.count(200) >= 2
    for code, _, answer in results:
        if code == 429:
            assert answer.headers["x-should-retry"] == "false"
            assert "$0.01 a day" in answer.json()["error"]["message"]
    used = sum(cost for _, cost, _ in results)
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT requests, cost FROM key_windows WHERE span = 'day'").fetchone()
    assert row is not None
    assert row == (codes.count(200), used)  # every admitted call settled to its cost
    assert used <= 10_000  # the budget, never passed
    assert len(server.requests) == codes.count(200)


@pytest.mark.anyio
async def test_keys_made_before_budgets_keep_their_limits_through_the_migration(
    store_url: str,
) -> None:
    from alembic import command
    from sqlalchemy import create_engine, text

    from chinwag.store import Store, normalize_url
    from chinwag.store.accounts import AccountStore
    from chinwag.store.store import migrations

    engine = create_engine(normalize_url(store_url))
    day = int(time.time() // 86_400 * 86_400)
    with engine.begin() as conn:
        command.upgrade(migrations(conn), "0006")
        conn.execute(text("INSERT INTO users (name, created_at) VALUES ('old', '2026-01-01')"))
        conn.execute(
            text(
                "INSERT INTO api_keys (id, user_id, hash, prefix, tokens_per_day, created_at)"
                " VALUES ('key_old', 1, :hash, 'cw-old', 1000, '2026-01-01')"
            ),
            {"hash": "a" * 64},
        )
        conn.execute(
            text(
                "INSERT INTO key_windows (key_id, span, start, requests, tokens)"
                " VALUES ('key_old', 'day', :day, 2, 50)"
            ),
            {"day": day},
        )
    store = await Store.open(store_url)
    try:
        accounts = AccountStore(store)
        (key,) = await accounts.list_keys(None)
        assert (key.tokens_per_day, key.cost_per_day, key.cost_per_month) == (1000, None, None)
        holder = await accounts.holder("a" * 64)
        assert holder is not None
        windows = await accounts.admit(holder, 10, 0, time.time())
        await accounts.settle(holder.key_id, windows, -4, 0)
    finally:
        await store.close()
    with engine.begin() as conn:
        row = conn.execute(text("SELECT requests, tokens, cost FROM key_windows")).one()
        assert tuple(row) == (3, 56, 0)  # the day went on from where it was
        command.downgrade(migrations(conn), "0006")
        command.upgrade(migrations(conn), "head")
    engine.dispose()


def test_calls_without_max_tokens_are_held_to_what_is_left_not_refused(
    budgeted: tuple[str, str], server: FakeOpenAI, home: Path, run: Runner
) -> None:
    base, key = budgeted
    costs, prompt = [], 0
    for i in range(20):  # bounded: each call spends at least its prompt's price
        answer = ask(base, key, f"question {i}")  # no max_tokens: sized from what is left
        if answer.status_code != 200:
            assert answer.status_code == 429
            break
        usage = answer.json()["usage"]
        costs.append(micro(usage))
        prompt = int(usage["prompt_tokens"])
        assert server.requests[-1]["max_tokens"] >= 1  # told how much answer is left to pay
        assert cost_today(home) == sum(costs) <= 10_000
    assert len(costs) >= 3  # not one call a day: the whole budget, spent call by call
    # Refused only once what is left could not pay for such a prompt and a word of answer.
    assert 10_000 - sum(costs) < 2 * (prompt * 100 + 200)
    # Token limits too: a key's second call in a minute is sized from what the first left.
    minute = new_key(run, "bob", "--tpm", "1000")
    with chinwag_serve(run.env) as (again, _):
        assert [ask(again, minute, f"q{i}").status_code for i in range(2)] == [200, 200]
