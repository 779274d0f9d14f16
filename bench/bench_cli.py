"""Issue 5: `chinwag --help` and a cold one-shot `chinwag ask`, against simonw/llm, in the
same run, both pointed at the same local OpenAI-protocol server.

llm is installed into a throwaway venv (kept in the cache dir between runs) and told
about the server through its extra-openai-models.yaml. "Cold" is a new process for each
prompt, from start to the full answer; both tools store the exchange in SQLite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, fake_server, reproduce

LLM_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chinwag" / "bench-llm"


def ensure_llm() -> Path:
    llm = LLM_VENV / "bin" / "llm"
    if not llm.exists():
        print("installing llm into a throwaway venv...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(LLM_VENV)], check=True)
        subprocess.run([str(LLM_VENV / "bin" / "pip"), "install", "--quiet", "llm"], check=True)
    return llm


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    out = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"{command} failed: {out.stderr[-500:]}")
    return elapsed * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    llm = ensure_llm()
    # Bytecode first, as an installed chinwag (and llm, from its wheel) has it.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    chinwag = Path(sys.executable).with_name("chinwag")
    with fake_server() as base_url, tempfile.TemporaryDirectory() as tmp:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHINWAG_"))}
        ours = {
            **base, "CHINWAG_HOME": f"{tmp}/chinwag", "OPENAI_BASE_URL": base_url,
            "CHINWAG_MODEL": "test-model",  # titles at the default: no model call
        }  # fmt: skip
        Path(f"{tmp}/llm").mkdir()
        Path(f"{tmp}/llm/extra-openai-models.yaml").write_text(
            f"- model_id: local\n  model_name: test-model\n  api_base: {base_url}\n"
        )
        theirs = {**base, "LLM_USER_PATH": f"{tmp}/llm", "OPENAI_API_KEY": "unused"}
        commands = {
            ("chinwag", "--help"): ([str(chinwag), "--help"], ours),
            ("llm", "--help"): ([str(llm), "--help"], theirs),
            ("chinwag", "ask"): ([str(chinwag), "Say hello"], ours),
            ("llm", "ask"): ([str(llm), "-m", "local", "Say hello"], theirs),
        }
        for command, env in commands.values():  # first runs: databases, caches
            timed(command, env)
        samples: dict[tuple[str, str], list[float]] = {key: [] for key in commands}
        for _ in range(args.runs):  # interleaved: both tools share the machine's noise
            for key, (command, env) in commands.items():
                samples[key].append(timed(command, env))
    median = {key: statistics.median(values) for key, values in samples.items()}
    print(f"{'':8s} {'--help':>10s} {'cold ask':>10s}   (median of {args.runs}, ms)")
    for tool in ("chinwag", "llm"):
        print(f"{tool:8s} {median[(tool, '--help')]:10.0f} {median[(tool, 'ask')]:10.0f}")
    for what in ("--help", "ask"):
        ratio = median[("llm", what)] / median[("chinwag", what)]
        print(f"llm / chinwag, {what}: {ratio:.1f}x")
    print("targets: chinwag --help <= 150 ms, cold ask <= 800 ms, both faster than llm")
    reproduce("bench_cli.py", f"--runs {args.runs}")


if __name__ == "__main__":
    main()
