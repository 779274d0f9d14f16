"""(b) Per-turn overhead of chinwag's Client.ask over a raw httpx call and a raw openai
SDK call, against the same local OpenAI-protocol server, in the same run.

chinwag's turn is complete: it streams the answer, stores the conversation, both
messages and the usage rollup in a SQLite file, and returns a Reply. The raw calls
store nothing. Overhead = chinwag's latency - the raw call's (median and p99), per run;
the figures are the medians over --runs runs.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from common import chinwag_home, fake_server, median, percentile, reproduce, timed

MESSAGES: Any = [{"role": "user", "content": "Say hello!"}]  # the SDK's TypedDicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="requests per client and run")
    parser.add_argument("--runs", type=int, default=5, help="runs; figures are their medians")
    parser.add_argument(
        "--model", default="test-model", help="the model served (gpt-4o-mini: a priced turn)"
    )
    args = parser.parse_args()
    model = args.model

    import httpx
    import openai

    import chinwag

    with fake_server() as base_url, chinwag_home():
        raw = httpx.Client(base_url=base_url)
        sdk = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
        config = chinwag.Config(
            {"providers.openai.base_url": base_url, "providers.openai.model": model}
        )
        client = chinwag.Client(config)
        body = {"model": model, "messages": MESSAGES}

        def call_httpx() -> object:
            return raw.post("/chat/completions", json=body).json()["choices"][0]["message"]

        def call_sdk() -> object:
            return sdk.chat.completions.create(model=model, messages=MESSAGES)

        def call_chinwag() -> object:
            return client.ask("Say hello!")

        calls = {"httpx": call_httpx, "openai SDK": call_sdk, "chinwag Client.ask": call_chinwag}
        for fn in calls.values():
            timed(fn, 30)  # warm up connections, caches and the database file
        # runs x n requests per client, interleaved request by request, so that a burst
        # of the machine's noise falls on every client alike.
        samples: list[dict[str, list[float]]] = []
        for _ in range(args.runs):
            run: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(args.n):
                for name, fn in calls.items():
                    run[name] += timed(fn, 1)
            samples.append(run)
        client.close()
        raw.close()
        sdk.close()

    print(f"load average: {os.getloadavg()[0]:.2f}")
    print(f"{'client':22s} {'p50 ms':>8s} {'p99 ms':>8s}   (median of {args.runs} runs x {args.n})")
    for name in calls:
        p50 = median([median(run[name]) for run in samples])
        p99 = median([percentile(run[name], 99) for run in samples])
        print(f"{name:22s} {p50:8.3f} {p99:8.3f}")
    for base in ("httpx", "openai SDK"):
        p50 = median([median(r["chinwag Client.ask"]) - median(r[base]) for r in samples])
        p99 = median(
            [percentile(r["chinwag Client.ask"], 99) - percentile(r[base], 99) for r in samples]
        )
        print(f"overhead over {base:10s}: p50 {p50:+.3f} ms, p99 {p99:+.3f} ms (medians of runs)")
    print("target: overhead over httpx <= 1.5 ms at p50, <= 3 ms at p99")
    reproduce("bench_turn.py", f"-n {args.n} --runs {args.runs} --model {model}")


if __name__ == "__main__":
    main()
