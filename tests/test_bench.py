"""The benchmarks still run (tiny sizes): each prints its figures and how to reproduce them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize(
    "args",
    [
        ["bench_import.py", "--runs", "1"],
        ["bench_turn.py", "-n", "5", "--runs", "1"],
        ["bench_local.py", "--tokens", "8", "--rounds", "1"],
        ["bench_quality.py", "--runs", "1"],
        [
            "bench_server.py",
            "--no-litellm",
            "--clients",
            "4",
            "--requests",
            "12",
            "--rate",
            "50",
            "--soak",
            "1",
            "--soak-clients",
            "4",
        ],
        ["bench_remote.py", "-n", "5", "--rounds", "1"],
        ["bench_stats.py", "--turns", "300", "--queries", "2", "--backend", "sqlite"],
        [
            "bench_stream.py",
            "--chunks",
            "20",
            "--streams",
            "1",
            "--runs",
            "1",
            "--concurrent",
            "8",
        ],
    ],
)
def test_benchmark_runs(args: list[str]) -> None:
    command = [sys.executable, str(BENCH / args[0]), *args[1:]]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=BENCH)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"reproduce: .venv/bin/python bench/{args[0]}" in out.stdout
    assert "failed" not in out.stdout.replace(" 0 failed", "")
