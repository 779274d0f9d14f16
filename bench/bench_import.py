"""(a) How long `import chinwag` takes, against `import httpx` and `import openai`.

Each import runs in a fresh interpreter; the figure is the median of in-process
timings (interpreter start-up excluded).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from common import ROOT, median, reproduce

CODE = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
STATEMENTS = {
    "import chinwag": "import chinwag",
    "from chinwag import Client": "from chinwag import Client",
    "import httpx": "import httpx",
    "import openai": "import openai",
}


def time_import(statement: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", CODE.format(stmt=statement)],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        samples.append(float(out.stdout))
    return median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    # An installed package has its bytecode; an editable checkout under
    # PYTHONDONTWRITEBYTECODE (set on these machines) would recompile on every start.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    figures = {name: time_import(stmt, args.runs) for name, stmt in STATEMENTS.items()}
    for name, ms in figures.items():
        print(f"{name:28s} {ms:7.1f} ms (median of {args.runs})")
    ratio = figures["from chinwag import Client"] / figures["import openai"]
    print(f"from chinwag import Client / import openai: {ratio:.2f}x; target: import <= 150 ms")
    reproduce("bench_import.py", f"--runs {args.runs}")


if __name__ == "__main__":
    main()
