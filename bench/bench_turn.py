"""(b) Per-turn overhead of chinwag's Client.ask over a raw httpx call and a raw openai
SDK call, against the same local OpenAI-protocol server, in the same run.

chinwag's turn is complete: it streams the answer, stores the conversation, both
messages and the usage rollup in a SQLite file, and returns a Reply. The raw calls
store nothing. Overhead = chinwag's latency - the raw call's (median and p99).
"""

from __future__ import annotations

import argparse
from typing import Any

from common import chinwag_home, fake_server, median, percentile, reproduce, timed

MESSAGES: Any = [{"role": "user", "content": "Say hello!"}]  # the SDK's TypedDicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=400, help="requests per client and round")
    parser.add_argument("--rounds", type=int, default=3)
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
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for fn in calls.values():
            timed(fn, 30)  # warm up connections, caches and the database file
        for _ in range(args.rounds):  # interleaved rounds share the machine's noise
            for name, fn in calls.items():
                samples[name] += timed(fn, args.n)
        client.close()
        raw.close()
        sdk.close()

    print(f"{'client':22s} {'p50 ms':>8s} {'p99 ms':>8s}   ({args.rounds} x {args.n} requests)")
    for name, values in samples.items():
        print(f"{name:22s} {median(values):8.3f} {percentile(values, 99):8.3f}")
    ours = samples["chinwag Client.ask"]
    for base in ("httpx", "openai SDK"):
        values = samples[base]
        print(
            f"overhead over {base:10s}: p50 {median(ours) - median(values):+.3f} ms, "
            f"p99 {percentile(ours, 99) - percentile(values, 99):+.3f} ms"
        )
    print("target: overhead over httpx <= 1.5 ms median")
    reproduce("bench_turn.py", f"-n {args.n} --rounds {args.rounds} --model {model}")


if __name__ == "__main__":
    main()
