"""(c) Streaming throughput, in chunks per second, of chinwag's AsyncClient.stream and
Client.stream against raw httpx + httpx-sse and the openai SDK (async and sync), and
(d) 1,000 concurrent streams of 64 chunks through one client of each, against the same
local OpenAI-protocol server, in the same run.

chinwag runs at the defaults a user gets (only the server's URL and model are set):
its streams are whole turns, each storing its question and answer (titles as by
default). Raw httpx gets the same pool size as chinwag and the SDK (1,000 connections;
httpx's own default is 100). Each figure is the median of --runs runs; each ratio is the
median of the per-run ratios, runs of the clients interleaved so they share the noise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from common import chinwag_home, fake_server, median, reproduce

MESSAGES: Any = [{"role": "user", "content": "Stream, please."}]  # the SDK's TypedDicts
BODY = {"model": "test-model", "messages": MESSAGES, "stream": True}
HTTPX, SDK, CHINWAG = "httpx + httpx-sse", "openai SDK", "chinwag"
GOALS = {"async": 0.5, "sync": 0.5, "concurrent": 0.45}  # x raw httpx (issue 17)


def chinwag_config(base_url: str) -> Any:
    """chinwag's defaults, pointed at the local server."""
    import chinwag

    return chinwag.Config(
        {"providers.openai.base_url": base_url, "providers.openai.model": "test-model"}
    )


def content_chunks(lines: Any) -> int:
    """How many SSE events of an OpenAI stream carry text, from httpx-sse's events."""
    n = 0
    for sse in lines:
        if sse.data != "[DONE]" and json.loads(sse.data)["choices"][0]["delta"].get("content"):
            n += 1
    return n


def report(title: str, rates: Mapping[str, list[float]], goal: float, unit: str) -> None:
    """Each client's median rate and chinwag's median ratios to the others."""
    runs = len(next(iter(rates.values())))
    print(title)
    for name, values in rates.items():
        print(f"  {name:18s} {median(values):9,.0f} {unit} (median of {runs})")
    ours = rates[CHINWAG]
    for base in (HTTPX, SDK):
        ratio = median([a / b for a, b in zip(ours, rates[base], strict=True)])
        aim = f" (goal >= {goal}x)" if base == HTTPX else ""
        print(f"  chinwag / {base}: {ratio:.2f}x{aim}")


async def async_clients(
    base_url: str, resources: list[Any]
) -> dict[str, Callable[[], Awaitable[int]]]:
    """One stream through each async client: how many text chunks it brought."""
    import httpx
    import openai
    from httpx_sse import EventSource

    import chinwag

    raw = httpx.AsyncClient(
        base_url=base_url,
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
        timeout=600,
    )
    sdk = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    client = chinwag.AsyncClient(chinwag_config(base_url))
    resources.extend([raw, sdk, client])

    async def via_httpx() -> int:
        async with raw.stream("POST", "/chat/completions", json=BODY) as response:
            return content_chunks([sse async for sse in EventSource(response).aiter_sse()])

    async def via_sdk() -> int:
        stream = await sdk.chat.completions.create(
            model="test-model", messages=MESSAGES, stream=True
        )
        return sum([1 async for c in stream if c.choices and c.choices[0].delta.content])

    async def via_chinwag() -> int:
        return len([text async for text in client.stream("Stream, please.")])

    return {HTTPX: via_httpx, SDK: via_sdk, CHINWAG: via_chinwag}


async def close_all(resources: list[Any]) -> None:
    """Close the clients; chinwag's background titles finish first (see settle)."""
    import chinwag

    for resource in resources:
        if isinstance(resource, chinwag.AsyncClient):
            # Stopping the server blocks this loop: a title request chinwag still held
            # half-sent would hold the server's shutdown.
            await resource.settle()
    for resource in resources:
        await (getattr(resource, "aclose", None) or resource.close)()
    resources.clear()


async def sequential(args: argparse.Namespace) -> dict[str, list[float]]:
    """(c, async): chunks per second over --streams streams, one after another."""
    resources: list[Any] = []
    with fake_server(chunks=args.chunks) as base_url:
        clients = await async_clients(base_url, resources)
        for fn in clients.values():
            await fn()  # warm up connections, caches and the database file
        rates: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(args.runs):
            for name, fn in clients.items():
                started = time.perf_counter()
                chunks = 0
                for _ in range(args.streams):
                    chunks += await fn()
                rates[name].append(chunks / (time.perf_counter() - started))
        await close_all(resources)
    return rates


async def concurrent(args: argparse.Namespace) -> dict[str, list[float]]:
    """(d): chunks per second with --concurrent streams of 64 chunks at once; failures."""
    resources: list[Any] = []
    with fake_server(chunks=64) as base_url:
        clients = await async_clients(base_url, resources)
        for fn in clients.values():
            await fn()
        rates: dict[str, list[float]] = {name: [] for name in clients}
        failures = dict.fromkeys(clients, 0)
        for _ in range(args.runs):
            for name, fn in clients.items():
                started = time.perf_counter()
                results = await asyncio.gather(
                    *(fn() for _ in range(args.concurrent)), return_exceptions=True
                )
                elapsed = time.perf_counter() - started
                failed = [r for r in results if isinstance(r, BaseException)]
                for error in failed[:3]:
                    print(f"  {name} failure: {error!r}")
                failures[name] += len(failed)
                rates[name].append(sum(r for r in results if isinstance(r, int)) / elapsed)
        await close_all(resources)
    for name, count in failures.items():
        print(f"  {name:18s} {count} failed of {args.runs} x {args.concurrent} streams")
    return rates


def sync_sequential(args: argparse.Namespace) -> dict[str, list[float]]:
    """(c, sync): Client.stream against sync raw httpx and the sync openai SDK."""
    import httpx
    import openai
    from httpx_sse import EventSource

    import chinwag

    with fake_server(chunks=args.chunks) as base_url:
        raw = httpx.Client(base_url=base_url, timeout=600)
        sdk = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
        client = chinwag.Client(chinwag_config(base_url))

        def via_httpx() -> int:
            with raw.stream("POST", "/chat/completions", json=BODY) as response:
                return content_chunks(EventSource(response).iter_sse())

        def via_sdk() -> int:
            stream = sdk.chat.completions.create(model="test-model", messages=MESSAGES, stream=True)
            return sum(1 for c in stream if c.choices and c.choices[0].delta.content)

        def via_chinwag() -> int:
            return sum(1 for _ in client.stream("Stream, please."))

        fns = {HTTPX: via_httpx, SDK: via_sdk, CHINWAG: via_chinwag}
        for fn in fns.values():
            fn()
        rates: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(args.runs):
            for name, fn in fns.items():
                started = time.perf_counter()
                chunks = sum(fn() for _ in range(args.streams))
                rates[name].append(chunks / (time.perf_counter() - started))
        client.settle()
        client.close()
        sdk.close()
        raw.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=2000, help="chunks per stream in (c)")
    parser.add_argument("--streams", type=int, default=5, help="streams per run in (c)")
    parser.add_argument("--runs", type=int, default=5, help="runs per client; medians")
    parser.add_argument("--concurrent", type=int, default=1000, help="streams at once in (d)")
    parser.add_argument("--only", choices=("async", "sync", "concurrent"), action="append")
    args = parser.parse_args()
    parts = args.only or ["async", "sync", "concurrent"]
    load = os.getloadavg()[0]
    print(f"load average at the start: {load:.2f}")
    with chinwag_home():
        if "async" in parts:
            rates = asyncio.run(sequential(args))
            title = f"(c, async) sequential streams: {args.streams} x {args.chunks} chunks"
            report(title, rates, GOALS["async"], "chunks/s")
        if "sync" in parts:
            rates = sync_sequential(args)
            title = f"(c, sync) sequential streams: {args.streams} x {args.chunks} chunks"
            report(title, rates, GOALS["sync"], "chunks/s")
        if "concurrent" in parts:
            print(f"(d) {args.concurrent} concurrent streams x 64 chunks through one client")
            rates = asyncio.run(concurrent(args))
            report("(d) chunk rate", rates, GOALS["concurrent"], "chunks/s")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    only = "".join(f" --only {part}" for part in args.only or [])
    reproduce(
        "bench_stream.py",
        f"--chunks {args.chunks} --streams {args.streams} --runs {args.runs} "
        f"--concurrent {args.concurrent}{only}",
    )


if __name__ == "__main__":
    main()
