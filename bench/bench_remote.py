"""Issue 13: a stored turn through the remote client (chinwag.Client(base_url=...).ask)
against a local `chinwag serve`, beside the openai SDK calling the same server's
/v1/chat/completions, in the same run: p50 and p99, sequential requests.

The SDK is measured twice: stateless (the server stores no conversation, only usage)
and with `x-chinwag-conversation: new` (a stored turn, as the remote client's is).
Both servers' upstream is tests/fake_openai.py in its own process. Defaults throughout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

from bench_server import free_port, start, stop
from common import fake_server, median, percentile, reproduce, timed

MESSAGES: Any = [{"role": "user", "content": "Say hello!"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=300, help="requests per client and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import openai

    import chinwag

    with fake_server() as upstream, tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHINWAG_"))}
        env.update(CHINWAG_HOME=home, OPENAI_BASE_URL=upstream, CHINWAG_MODEL="test-model")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "chinwag", "serve", "--port", str(port)]
        server = start(command, env, f"{base}/api/v1/health")
        try:
            remote = chinwag.Client(base_url=base)
            sdk = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)

            def call_remote() -> object:
                return remote.ask("Say hello!")

            def call_sdk() -> object:
                return sdk.chat.completions.create(model="default", messages=MESSAGES)

            def call_sdk_stored() -> object:
                return sdk.chat.completions.create(
                    model="default", messages=MESSAGES,
                    extra_headers={"x-chinwag-conversation": "new"},
                )  # fmt: skip

            calls = {
                "chinwag remote Client.ask": call_remote,
                "openai SDK, stored": call_sdk_stored,
                "openai SDK, stateless": call_sdk,
            }
            samples: dict[str, list[float]] = {name: [] for name in calls}
            for fn in calls.values():
                timed(fn, 20)  # warm up connections and the server's store
            for _ in range(args.rounds):  # interleaved rounds share the machine's noise
                for name, fn in calls.items():
                    samples[name] += timed(fn, args.n)
            remote.close()
            sdk.close()
        finally:
            stop(server)

    print(f"{'client':28s} {'p50 ms':>8s} {'p99 ms':>8s}   ({args.rounds} x {args.n} requests)")
    for name, values in samples.items():
        print(f"{name:28s} {median(values):8.3f} {percentile(values, 99):8.3f}")
    ours = samples["chinwag remote Client.ask"]
    for other in ("openai SDK, stored", "openai SDK, stateless"):
        theirs = samples[other]
        print(
            f"remote client / {other}: p50 {median(ours) / median(theirs):.2f}x, "
            f"p99 {percentile(ours, 99) / percentile(theirs, 99):.2f}x"
        )
    print("goal: the remote client no slower than the SDK (ratio <= 1.00)")
    reproduce("bench_remote.py", f"-n {args.n} --rounds {args.rounds}")


if __name__ == "__main__":
    main()
