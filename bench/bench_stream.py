"""(c) Streaming throughput, in chunks per second, of chinwag's AsyncClient.stream against
the raw openai SDK and raw httpx + httpx-sse, and (d) 256 concurrent streams through one
AsyncClient, against the same local OpenAI-protocol server, in the same run.

chinwag's streams are whole turns: each stores its user message and its answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from common import chinwag_home, fake_server, median, reproduce

MESSAGES: Any = [{"role": "user", "content": "Stream, please."}]  # the SDK's TypedDicts


async def rate(fn: Callable[[], Awaitable[int]], streams: int) -> float:
    """Chunks per second over `streams` sequential streams."""
    await fn()  # warm up
    started = time.perf_counter()
    chunks = 0
    for _ in range(streams):
        chunks += await fn()
    return chunks / (time.perf_counter() - started)


async def concurrent(fn: Callable[[], Awaitable[int]], n: int) -> tuple[float, int, int]:
    """Chunks per second with n streams at once; and how many streams failed."""
    started = time.perf_counter()
    results = await asyncio.gather(*(fn() for _ in range(n)), return_exceptions=True)
    elapsed = time.perf_counter() - started
    failed = [r for r in results if isinstance(r, BaseException)]
    for error in failed[:3]:
        print(f"  failure: {error!r}")
    chunks = sum(r for r in results if isinstance(r, int))
    return chunks / elapsed, len(failed), chunks


async def main(args: argparse.Namespace) -> None:
    import httpx
    import openai
    from httpx_sse import EventSource

    import chinwag

    async def run_all(base_url: str) -> dict[str, Callable[[], Awaitable[int]]]:
        raw = httpx.AsyncClient(
            base_url=base_url,
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
            timeout=60,
        )
        sdk = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60)
        config = chinwag.Config(
            {
                "providers.openai.base_url": base_url,
                "providers.openai.model": "test-model",
                "providers.openai.timeout": 60,
            }
        )
        client = chinwag.AsyncClient(config)
        body = {"model": "test-model", "messages": MESSAGES, "stream": True}
        resources.extend([raw, sdk, client])

        async def via_httpx() -> int:
            n = 0
            async with raw.stream("POST", "/chat/completions", json=body) as response:
                async for sse in EventSource(response).aiter_sse():
                    if sse.data != "[DONE]" and json.loads(sse.data)["choices"][0]["delta"].get(
                        "content"
                    ):
                        n += 1
            return n

        async def via_sdk() -> int:
            n = 0
            stream = await sdk.chat.completions.create(
                model="test-model",
                messages=MESSAGES,
                stream=True,
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    n += 1
            return n

        async def via_chinwag() -> int:
            n = 0
            async for _ in client.stream("Stream, please."):
                n += 1
            return n

        return {"httpx + httpx-sse": via_httpx, "openai SDK": via_sdk, "chinwag": via_chinwag}

    resources: list[object] = []
    with chinwag_home():
        with fake_server(chunks=args.chunks) as base_url:
            clients = await run_all(base_url)
            print(f"(c) sequential streams: {args.streams} x {args.chunks} chunks")
            rates: dict[str, list[float]] = {name: [] for name in clients}
            for _ in range(args.rounds):  # interleaved rounds share the machine's noise
                for name, fn in clients.items():
                    rates[name].append(await rate(fn, args.streams))
            best = {name: max(values) for name, values in rates.items()}
            for name, value in best.items():
                print(f"  {name:18s} {value:9,.0f} chunks/s (best of {args.rounds})")
            print(
                f"  chinwag / SDK: {best['chinwag'] / best['openai SDK']:.2f}x (target >= 0.8); "
                f"chinwag / httpx: {best['chinwag'] / best['httpx + httpx-sse']:.2f}x"
            )
            await settle(resources)
        with fake_server(chunks=64) as base_url:
            clients = await run_all(base_url)
            print(f"(d) {args.concurrent} concurrent streams x 64 chunks through one client")
            for name in ("openai SDK", "chinwag"):
                per_s, failed, chunks = await concurrent(clients[name], args.concurrent)
                print(f"  {name:18s} {per_s:9,.0f} chunks/s, {chunks} chunks, {failed} failed")
            async with chinwag.AsyncClient(
                chinwag.Config({"providers.openai.base_url": base_url})
            ) as check:
                stored = len(await check.conversations.list(limit=10_000))
            print(f"  conversations stored by chinwag across the run: {stored}")
            await settle(resources)
    for resource in resources:
        close = getattr(resource, "aclose", None) or resource.close  # type: ignore[attr-defined]
        await close()
    reproduce(
        "bench_stream.py",
        f"--chunks {args.chunks} --streams {args.streams} --rounds {args.rounds} "
        f"--concurrent {args.concurrent}",
    )


async def settle(resources: list[object]) -> None:
    """Let chinwag's background titles finish before their server stops: stopping it blocks
    this loop, and a title request it holds half-sent would hold the server's shutdown."""
    import chinwag

    for resource in resources:
        if isinstance(resource, chinwag.AsyncClient):
            await resource.settle()


def sync_rates(args: argparse.Namespace) -> None:
    """(c, sync) chinwag's Client.stream against sync raw httpx and the sync openai SDK."""
    import httpx
    import openai
    from httpx_sse import EventSource

    import chinwag

    with chinwag_home(), fake_server(chunks=args.chunks) as base_url:
        raw = httpx.Client(base_url=base_url, timeout=60)
        sdk = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60)
        config = chinwag.Config(
            {"providers.openai.base_url": base_url, "providers.openai.model": "test-model"}
        )
        client = chinwag.Client(config)
        body = {"model": "test-model", "messages": MESSAGES, "stream": True}

        def via_httpx() -> int:
            n = 0
            with raw.stream("POST", "/chat/completions", json=body) as response:
                for sse in EventSource(response).iter_sse():
                    if sse.data != "[DONE]" and json.loads(sse.data)["choices"][0]["delta"].get(
                        "content"
                    ):
                        n += 1
            return n

        def via_sdk() -> int:
            stream = sdk.chat.completions.create(
                model="test-model",
                messages=MESSAGES,
                stream=True,
            )
            return sum(1 for c in stream if c.choices and c.choices[0].delta.content)

        def via_chinwag() -> int:
            return sum(1 for _ in client.stream("Stream, please."))

        fns = {
            "httpx (sync)": via_httpx,
            "openai SDK (sync)": via_sdk,
            "chinwag Client": via_chinwag,
        }
        rates: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(args.rounds):  # interleaved rounds share the machine's noise
            for name, fn in fns.items():
                fn()
                started = time.perf_counter()
                chunks = sum(fn() for _ in range(args.streams))
                rates[name].append(chunks / (time.perf_counter() - started))
        client.close()
        sdk.close()
        raw.close()
    print(f"(c, sync) sequential streams: {args.streams} x {args.chunks} chunks")
    for name, values in rates.items():
        print(f"  {name:18s} {median(values):9,.0f} chunks/s (median of {args.rounds})")
    ours = rates["chinwag Client"]
    for base in ("httpx (sync)", "openai SDK (sync)"):
        ratios = [a / b for a, b in zip(ours, rates[base], strict=True)]
        print(f"  chinwag Client / {base}: {median(ratios):.2f}x (median of per-round ratios)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=2000, help="chunks per stream in (c)")
    parser.add_argument("--streams", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=256)
    arguments = parser.parse_args()
    asyncio.run(main(arguments))
    sync_rates(arguments)
