"""Helpers shared by the benchmarks: a fake OpenAI server in its own process, statistics."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@contextmanager
def fake_server(chunks: int = 0, *, fast: bool = False) -> Iterator[str]:
    """The fake OpenAI server (tests/fake_openai.py) in a separate process; its base URL.
    fast: bench/upstream.py instead, canned answers at a few microseconds each."""
    cmd = [sys.executable, "-m", "bench.upstream" if fast else "tests.fake_openai"]
    if chunks:
        cmd += ["--chunks", str(chunks)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        if not base_url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the fake server did not start: {base_url!r}")
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def chinwag_home() -> Iterator[Path]:
    """A throwaway CHINWAG_HOME, so benchmarks never touch the user's files."""
    with tempfile.TemporaryDirectory(prefix="chinwag-bench-") as home:
        old = os.environ.get("CHINWAG_HOME")
        os.environ["CHINWAG_HOME"] = home
        try:
            yield Path(home)
        finally:
            if old is None:
                del os.environ["CHINWAG_HOME"]
            else:
                os.environ["CHINWAG_HOME"] = old


def timed(fn: Callable[[], object], n: int) -> list[float]:
    """Milliseconds for each of `n` calls of `fn`, one after another."""
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def reproduce(script: str, args: str = "") -> None:
    print(f"reproduce: .venv/bin/python bench/{script}{' ' + args if args else ''}")
