"""Issue 12: what `chinwag serve` adds over calling a fast loopback upstream directly, and
the same for the LiteLLM proxy, in one run; then many concurrent SSE clients.

(a) non-streamed chat completions from 50 concurrent clients: added latency, p50 and p99;
(b) streamed ones: added time to the first token, p50 and p99;
    both at a paced load (--rate requests/s from all clients together, on a schedule;
    latency counts from when a request was due);
(c) saturation: the same clients sending as fast as answers come, requests/s;
(d) --soak: 500 concurrent SSE clients for 60 s, each turn stored (x-chinwag-conversation:
    new): errors, and whether every finished turn is in the store.
The upstream is bench/upstream.py in its own process (canned answers, microseconds each);
chinwag and LiteLLM each run as their own server process, one worker, at their defaults.
LiteLLM is installed into a cached venv on first use (--no-litellm skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from common import ROOT, fake_server, percentile, reproduce

LITELLM_VENV = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chinwag" / "bench-litellm"
)
LITELLM_KEY = "sk-bench-" + "0" * 32  # LiteLLM refuses to start without a master key
BODY = {"messages": [{"role": "user", "content": "Say hello."}]}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(command: list[str], env: dict[str, str], health: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = proc.stderr.read()[-800:] if proc.stderr else b""
            raise RuntimeError(f"{command[:3]} exited: {said!r}")
        try:
            if httpx.get(health, timeout=1).status_code < 500:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{command[:3]} did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def ensure_litellm() -> Path:
    litellm = LITELLM_VENV / "bin" / "litellm"
    if not litellm.exists():
        print("installing litellm[proxy] into a throwaway venv...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        pip = [str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet", "litellm[proxy]"]
        subprocess.run(pip, check=True)
    return litellm


async def latencies(
    url: str,
    model: str,
    args: argparse.Namespace,
    *,
    stream: bool,
    headers: dict[str, str],
    paced: bool = True,
) -> tuple[list[float], float]:
    """Milliseconds per request (to the first token, streamed) from `args.clients` concurrent
    clients sending `args.requests` in all, and the requests per second achieved.

    Paced, the clients together send `args.rate` requests a second on a fixed schedule, and
    each latency counts from when its request was due, so a slow answer that delays the
    next request is not hidden (no coordinated omission). Unpaced, each client sends as
    soon as its last answer came: the server's saturation throughput.
    """
    found: list[float] = []
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(timeout=60, limits=limits, headers=headers) as http:

        async def one(due: float) -> None:
            body = {**BODY, "model": model, "stream": stream}
            if not stream:
                answer = await http.post(url, json=body)
                answer.raise_for_status()
                found.append((time.perf_counter() - due) * 1000)
                return
            async with http.stream("POST", url, json=body) as answer:
                answer.raise_for_status()
                first = None
                async for line in answer.aiter_lines():
                    if first is None and _has_text(line):
                        first = (time.perf_counter() - due) * 1000
                ended = (time.perf_counter() - due) * 1000
                found.append(first if first is not None else ended)

        each = max(1, args.requests // args.clients)
        gap = args.clients / args.rate

        async def client(index: int, start: float) -> None:
            for k in range(each):
                if not paced:
                    await one(time.perf_counter())
                    continue
                due = start + (index / args.clients + k) * gap
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                await one(due)

        for _ in range(args.clients):  # warm: connections, caches
            await one(time.perf_counter())
        found.clear()
        started = time.perf_counter()
        await asyncio.gather(*(client(i, started) for i in range(args.clients)))
        elapsed = time.perf_counter() - started
    return found, len(found) / elapsed


async def soak(
    base: str, clients: int, seconds: float, auth: dict[str, str]
) -> tuple[int, Counter[str]]:
    """Stored streamed turns from many clients until time is up: (finished, why others
    failed)."""
    finished = 0
    failed: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits, headers=auth) as http:

        async def client() -> None:
            nonlocal finished, failed
            while time.monotonic() < deadline:
                body = {**BODY, "model": "default", "stream": True}
                try:
                    async with http.stream(
                        "POST", f"{base}/v1/chat/completions", json=body,
                        headers={"x-chinwag-conversation": "new"},
                    ) as answer:  # fmt: skip
                        lines = [line async for line in answer.aiter_lines()]
                    errors = [line for line in lines if line.startswith('data: {"error"')]
                    if answer.status_code != 200:
                        failed[f"HTTP {answer.status_code}"] += 1
                    elif errors or "data: [DONE]" not in lines:
                        failed[(errors or ["no [DONE]"])[0][:120]] += 1
                    else:
                        finished += 1
                except httpx.HTTPError as exc:
                    failed[f"{type(exc).__name__}: {exc}"[:120]] += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return finished, failed


def _has_text(line: str) -> bool:
    """A streamed chunk that carries some of the answer."""
    if not line.startswith("data: {"):
        return False
    choices = json.loads(line[6:]).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


def report(name: str, direct: list[float], through: list[float]) -> tuple[float, float]:
    added = (
        percentile(through, 50) - percentile(direct, 50),
        percentile(through, 99) - percentile(direct, 99),
    )
    print(
        f"  {name:10s} p50 {percentile(through, 50):7.2f} ms (+{added[0]:6.2f}), "
        f"p99 {percentile(through, 99):7.2f} ms (+{added[1]:6.2f}); "
        f"direct p50 {percentile(direct, 50):.2f}, p99 {percentile(direct, 99):.2f}"
    )
    return added


async def measure(
    targets: dict[str, tuple[str, str, dict[str, str]]], upstream: str, args: argparse.Namespace
) -> None:
    direct_url = f"{upstream}/chat/completions"
    for stream, what in ((False, "(a) non-streamed"), (True, "(b) time to first token")):
        print(f"{what}: {args.clients} concurrent clients, {args.requests} requests "
              f"at {args.rate:g}/s in all")  # fmt: skip
        direct, _ = await latencies(direct_url, "test-model", args, stream=stream, headers={})
        for name, (url, model, headers) in targets.items():
            through, _ = await latencies(url, model, args, stream=stream, headers=headers)
            report(name, direct, through)
    print(f"(c) saturation, non-streamed: {args.clients} clients, each sending as soon as "
          "its last answer came (not the paced load above)")  # fmt: skip
    _, most = await latencies(direct_url, "test-model", args, stream=False, headers={},
                              paced=False)  # fmt: skip
    print(f"  {'direct':10s} {most:7.0f} requests/s")
    for name, (url, model, headers) in targets.items():
        found, rate = await latencies(url, model, args, stream=False, headers=headers,
                                      paced=False)  # fmt: skip
        print(f"  {name:10s} {rate:7.0f} requests/s, p50 {percentile(found, 50):.1f} ms, "
              f"p99 {percentile(found, 99):.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000, help="per measurement")
    parser.add_argument("--rate", type=float, default=100, help="requests/s, all clients")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--soak", type=float, default=0, help="seconds of (c); 60 in the issue")
    parser.add_argument("--soak-clients", type=int, default=500)
    args = parser.parse_args()
    litellm = None if args.no_litellm else ensure_litellm()
    with fake_server(chunks=16, fast=True) as upstream, tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHINWAG_"))}
        env.update(CHINWAG_HOME=f"{tmp}/chinwag", OPENAI_BASE_URL=upstream,
                   CHINWAG_MODEL="test-model")  # fmt: skip
        # As LiteLLM's master key: every request is authenticated, as on a real server.
        chinwag = [sys.executable, "-m", "chinwag"]
        subprocess.run([*chinwag, "users", "add", "bench"], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        made = subprocess.run([*chinwag, "keys", "create", "--user", "bench"], env=env,
                              check=True, capture_output=True, text=True)  # fmt: skip
        auth = {"authorization": f"Bearer {made.stdout.strip()}"}
        port = free_port()
        ours = start(
            [sys.executable, "-m", "chinwag", "serve", "--port", str(port)],
            env, f"http://127.0.0.1:{port}/api/v1/health",
        )  # fmt: skip
        procs = [ours]
        targets: dict[str, tuple[str, str, dict[str, str]]] = {
            "chinwag": (f"http://127.0.0.1:{port}/v1/chat/completions", "openai/test-model", auth)
        }
        try:
            if litellm is not None:
                lport = free_port()
                config = Path(tmp) / "litellm.yaml"
                config.write_text(
                    "model_list:\n  - model_name: test-model\n    litellm_params:\n"
                    f"      model: openai/test-model\n      api_base: {upstream}\n"
                    "      api_key: unused\n"
                )
                procs.append(start(
                    [str(litellm), "--config", str(config), "--port", str(lport),
                     "--num_workers", "1"],
                    {**env, "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": LITELLM_KEY},
                    f"http://127.0.0.1:{lport}/health/liveliness",
                ))  # fmt: skip
                targets["LiteLLM"] = (
                    f"http://127.0.0.1:{lport}/chat/completions",
                    "test-model",
                    {"authorization": f"Bearer {LITELLM_KEY}"},
                )
            asyncio.run(measure(targets, upstream, args))
            if args.soak:
                print(f"(d) {args.soak_clients} concurrent SSE clients for {args.soak:.0f} s")
                base = f"http://127.0.0.1:{port}"
                before = httpx.get(f"{base}/api/v1/stats/day", timeout=60, headers=auth).json()[
                    "requests"
                ]
                finished, failed = asyncio.run(soak(base, args.soak_clients, args.soak, auth))
                day = httpx.get(f"{base}/api/v1/stats/day", timeout=60, headers=auth).json()
                print(
                    f"  {finished} turns finished, {sum(failed.values())} failed; the store "
                    f"counts {day['requests'] - before} turns ({day['errors']} errors)"
                )
                for why, count in failed.most_common():
                    print(f"    {count} x {why}")
        finally:
            for proc in procs:
                stop(proc)
    flags = f"--clients {args.clients} --requests {args.requests} --rate {args.rate:g}"
    flags += " --no-litellm" if args.no_litellm else ""
    flags += f" --soak {args.soak:g} --soak-clients {args.soak_clients}" if args.soak else ""
    reproduce("bench_server.py", flags)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
