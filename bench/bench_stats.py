"""Issue 4: with 1,000,000 turns stored, a 30-day statistics query for one user answers in
under 50 ms, on SQLite and on PostgreSQL.

A generator fills a fresh store with N turns (conversations, both messages of each turn
and the daily usage rollup, as chinwag writes them) for many users over a year. The
figure is `client.stats.usage(...)` through the public API; the baseline, measured in
the same run, computes the same figures by scanning the user's messages, which is what
the rollup exists to avoid.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import anyio

from common import ROOT, chinwag_home, percentile, reproduce

USERS = 1000
DAYS = 365
BOTS = [str(uuid.UUID(int=i)) for i in range(4)]
MODELS = ["model-a", "model-b"]
TURNS_PER_CONVERSATION = 10


def generate(url: str, turns: int, seed: int = 1) -> None:
    """Fill the store at `url` with `turns` turns, in batches, with the store's own tables."""
    from sqlalchemy import create_engine

    from chinwag.store.schema import conversations, messages, usage_daily, users
    from chinwag.store.store import normalize_url

    rng = random.Random(seed)
    engine = create_engine(normalize_url(url))
    today = datetime.now(UTC).date()
    stamp = datetime.now(UTC)
    rollup: dict[tuple[int, date, str, str], list[int]] = {}
    with engine.begin() as conn:
        conn.execute(
            users.insert(),
            [{"id": i + 1, "name": f"user-{i}", "created_at": stamp} for i in range(USERS)],
        )
    done = 0
    while done < turns:
        batch = min(50_000, turns - done)
        convs: list[dict[str, Any]] = []
        msgs: list[dict[str, Any]] = []
        for start in range(0, batch, TURNS_PER_CONVERSATION):
            user_id = rng.randrange(USERS) + 1
            bot, model = rng.choice(BOTS), rng.choice(MODELS)
            day = today - timedelta(days=rng.randrange(DAYS))
            created = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
            cid = uuid.uuid4().hex
            parent = None
            for _ in range(min(TURNS_PER_CONVERSATION, batch - start)):
                pt, ct = rng.randrange(20, 2000), rng.randrange(5, 800)
                pw, cw = pt * 3 // 4, ct * 3 // 4
                question, answer = uuid.uuid4().hex, uuid.uuid4().hex
                msgs.append(_message(question, cid, parent, "user", created))
                msgs.append(
                    _message(answer, cid, question, "assistant", created, model, (pt, ct, pw, cw))
                )
                parent = answer
                counts = rollup.setdefault((user_id, day, bot, model), [0, 0, 0, 0, 0, 0])
                for i, n in enumerate((1, 0, pt, ct, pw, cw)):
                    counts[i] += n
            convs.append(
                {
                    "id": cid, "user_id": user_id, "bot_uid": bot, "title": None,
                    "system_prompt": None, "current_message_id": parent,
                    "created_at": created, "updated_at": created,
                }
            )  # fmt: skip
        with engine.begin() as conn:
            conn.execute(conversations.insert(), convs)
            conn.execute(messages.insert(), msgs)
        done += batch
        print(f"  {done:,} turns written", file=sys.stderr, end="\r", flush=True)
    rows = [
        {
            "user_id": u, "day": d, "bot_uid": b, "model": m, "requests": c[0], "errors": c[1],
            "prompt_tokens": c[2], "completion_tokens": c[3], "prompt_words": c[4],
            "completion_words": c[5],
        }
        for (u, d, b, m), c in rollup.items()
    ]  # fmt: skip
    with engine.begin() as conn:
        for i in range(0, len(rows), 50_000):
            conn.execute(usage_daily.insert(), rows[i : i + 50_000])
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    print(f"  {turns:,} turns, {len(rows):,} rollup rows", file=sys.stderr)


def _message(
    mid: str,
    cid: str,
    parent: str | None,
    role: str,
    created: datetime,
    model: str | None = None,
    usage: tuple[int, int, int, int] | None = None,
) -> dict[str, Any]:
    pt, ct, pw, cw = usage or (None, None, None, None)
    return {
        "id": mid, "conversation_id": cid, "parent_id": parent, "role": role,
        "content": "x" * 40, "status": "complete", "error": None, "model": model,
        "prompt_tokens": pt, "completion_tokens": ct, "prompt_words": pw,
        "completion_words": cw, "usage_estimated": False, "meta": None, "created_at": created,
    }  # fmt: skip


async def measure(url: str, queries: int) -> tuple[list[float], list[float]]:
    """Milliseconds per 30-day query: through the rollup, and by scanning messages."""
    from sqlalchemy import func, select

    import chinwag
    from chinwag.store.schema import conversations, messages

    rng = random.Random(2)
    today = datetime.now(UTC).date()
    start = today - timedelta(days=29)
    config = chinwag.Config({"store.url": url})
    rollup: list[float] = []
    scan: list[float] = []
    async with chinwag.AsyncClient(config) as client:
        store = await client._engine.store()
        await client.stats.usage(start_date=start, end_date=today, user="user-0")  # warm up
        for _ in range(queries):
            user = f"user-{rng.randrange(USERS)}"
            began = time.perf_counter()
            stats = await client.stats.usage(start_date=start, end_date=today, user=user)
            rollup.append((time.perf_counter() - began) * 1000)
            uid = await store.user_id(user)
            since = datetime(start.year, start.month, start.day, tzinfo=UTC)
            joined = messages.join(conversations, conversations.c.id == messages.c.conversation_id)
            stmt = (
                select(func.count(), func.sum(messages.c.prompt_tokens))
                .select_from(joined)
                .where(conversations.c.user_id == uid)
                .where(messages.c.role == "assistant", messages.c.created_at >= since)
            )

            def scan_messages(conn: Any, stmt: Any = stmt) -> Any:
                return conn.execute(stmt).one()

            began = time.perf_counter()
            count, _ = await store._run(scan_messages)
            scan.append((time.perf_counter() - began) * 1000)
            assert count == stats.total.requests, (count, stats.total.requests)
    return rollup, scan


def report(name: str, rollup: list[float], scan: list[float]) -> None:
    p50, p95 = statistics.median(rollup), percentile(rollup, 95)
    print(f"  {name:10s} stats.usage (30 days, one user): p50 {p50:6.2f} ms, p95 {p95:6.2f} ms")
    print(f"  {'':10s} scanning messages instead:         p50 {statistics.median(scan):6.2f} ms "
          f"({statistics.median(scan) / p50:.1f}x the rollup's time)")  # fmt: skip
    print(f"  {'':10s} target: < 50 ms -> {'met' if p95 < 50 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    with chinwag_home() as home:
        if args.backend in ("sqlite", "both"):
            url = f"sqlite:///{home / 'stats.db'}"
            anyio.run(_migrate, url)
            started = time.perf_counter()
            generate(url, args.turns)
            print(f"  generated in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            report("SQLite", *anyio.run(measure, url, args.queries))
        if args.backend in ("postgresql", "both"):
            from tests.postgres import postgres_server

            with postgres_server() as url:
                anyio.run(_migrate, url)
                generate(url, args.turns)
                report("PostgreSQL", *anyio.run(measure, url, args.queries))
    print(f"({args.turns:,} turns by {USERS} users over {DAYS} days)")
    reproduce(
        "bench_stats.py", f"--turns {args.turns} --queries {args.queries} --backend {args.backend}"
    )


async def _migrate(url: str) -> None:
    from chinwag.store import Store

    await (await Store.open(url)).close()


if __name__ == "__main__":
    main()
