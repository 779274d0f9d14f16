"""Issue 3: the local provider's tokens per second against a direct llama-cpp-python call
on the same prompt, settings and loaded model, and the time to the first token.

chinwag's side is a whole turn through AsyncClient (stored in SQLite); the direct side
is `Llama.create_completion`. Both decode greedily to the same fixed length, in
interleaved rounds. Add --n-gpu-layers -1 on a machine whose llama-cpp-python has CUDA.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import anyio

from common import chinwag_home, reproduce

# A prompt this tiny base model answers at full length on both sides (no early stop).
PROMPT = "Continue the sequence: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"
SYSTEM = "You are a helpful assistant."  # the default bot's, so both prompts are identical


async def main(args: argparse.Namespace) -> None:

    import chinwag
    from chinwag.providers.gguf import packaged_model
    from chinwag.providers.local import (
        EXAMPLES,
        TRANSCRIPT_STOPS,
        LocalSettings,
        _load,
        transcript,
    )

    with chinwag_home() as home:
        path = await anyio.to_thread.run_sync(packaged_model, home / "cache")
        # The direct side calls the very same model on the very same OS thread, bypassing
        # chinwag: llama.cpp's OpenMP threads belong to the thread that calls the model,
        # and two models (or threads) taking turns slow each other down by a third.
        loaded = _load(path, LocalSettings(n_ctx=2048, n_gpu_layers=args.n_gpu_layers))
        llm: Any = loaded.llm
        direct_thread = loaded.worker
        system = {"role": "system", "content": SYSTEM}
        calls = iter(range(1_000_000))

        def question() -> str:
            # A new question each call, as in a new turn: no prompt is served from cache.
            return f"Question {next(calls)}. {PROMPT}"

        config = chinwag.Config(
            {
                "provider": "local",
                "providers.local.model_path": str(path),
                "providers.local.n_gpu_layers": args.n_gpu_layers,
                "providers.local.n_ctx": 2048,
            }
        )
        params = {"max_tokens": args.tokens, "temperature": 0.0}
        direct_params = {**params, "repeat_penalty": LocalSettings().repeat_penalty}

        def direct() -> tuple[int, float, float]:
            # Throughput from a plain call (its usage counts tokens exactly), and the
            # first token from a streamed one.
            prompt = transcript([system, {"role": "user", "content": question()}], EXAMPLES)
            started = time.perf_counter()
            out = llm.create_completion(prompt, stop=list(TRANSCRIPT_STOPS), **direct_params)
            elapsed = time.perf_counter() - started
            prompt = transcript([system, {"role": "user", "content": question()}], EXAMPLES)
            started = time.perf_counter()
            for _ in llm.create_completion(
                prompt,
                stream=True,
                stop=list(TRANSCRIPT_STOPS),
                **{**direct_params, "max_tokens": 1},
            ):
                break
            first = time.perf_counter() - started
            return out["usage"]["completion_tokens"], elapsed, first

        async with chinwag.AsyncClient(config) as client:

            async def ours() -> tuple[int, float, float]:
                started = time.perf_counter()
                first = None
                stream = client.stream(question(), max_tokens=args.tokens, temperature=0.0)
                async for _ in stream:
                    if first is None:
                        first = time.perf_counter() - started
                elapsed = time.perf_counter() - started
                return stream.reply.usage.completion_tokens, elapsed, first or 0.0

            async def on_direct_thread() -> tuple[int, float, float]:
                return await anyio.to_thread.run_sync(direct_thread.submit(direct).result)

            await ours()  # warm up: load, caches, database
            await on_direct_thread()
            results: dict[str, list[tuple[int, float, float]]] = {"direct": [], "chinwag": []}
            for _ in range(args.rounds):
                results["direct"].append(await on_direct_thread())
                results["chinwag"].append(await ours())

    rates = {}
    print(f"{args.rounds} rounds x {args.tokens} tokens, greedy, n_gpu_layers={args.n_gpu_layers}")
    for name, runs in results.items():
        tokens = sum(r[0] for r in runs)
        seconds = sum(r[1] for r in runs)
        rates[name] = tokens / seconds
        ttft = statistics.median(r[2] for r in runs) * 1000
        print(f"  {name:8s} {rates[name]:7.1f} tokens/s, first token after {ttft:6.1f} ms (median)")
    print(f"chinwag / direct llama-cpp-python: {rates['chinwag'] / rates['direct']:.3f}x "
          "(target >= 0.95)")  # fmt: skip
    reproduce(
        "bench_local.py",
        f"--tokens {args.tokens} --rounds {args.rounds} --n-gpu-layers {args.n_gpu_layers}",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n-gpu-layers", type=int, default=0)
    anyio.run(main, parser.parse_args())
