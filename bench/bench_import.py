"""(a) How long `import chinwag` takes, against `import httpx` and `import openai`; and
the import with a client made, since `from chinwag import Client` defers the engine (and
pydantic, anyio) to the first Client.

Each statement runs in a fresh interpreter, the statements interleaved run by run; the
figures are medians of the in-process timing (interpreter start-up excluded) and of the
whole process (start-up included), and the ratios medians of the per-run ratios.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from common import ROOT, median, reproduce

CODE = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
STATEMENTS = {
    "import chinwag": "import chinwag",
    "from chinwag import Client": "from chinwag import Client",
    "import httpx": "import httpx",
    "import openai": "import openai",
    # A client made and closed, as a program's first call needs it (no I/O in any of them).
    "Client() as well": "from chinwag import Client; Client().close()",
    "httpx.Client() as well": "import httpx; httpx.Client().close()",
    "openai.OpenAI() as well": "import openai; openai.OpenAI(api_key='unused').close()",
}


def time_once(statement: str) -> tuple[float, float]:
    """Milliseconds for one fresh interpreter: the import alone, and the whole process."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CODE.format(stmt=statement)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    whole = time.perf_counter() - started
    return float(out.stdout) * 1000, whole * 1000


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="chinwag-bench-") as home:
        os.environ["CHINWAG_HOME"] = home  # a Client made here never touches the user's files
        measure()


def measure() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    # An installed package has its bytecode; an editable checkout under
    # PYTHONDONTWRITEBYTECODE (set on these machines) would recompile on every start.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    print(f"load average: {os.getloadavg()[0]:.2f}")
    imports: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    wholes: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for _ in range(args.runs):  # interleaved: the machine's noise falls on each alike
        for name, statement in STATEMENTS.items():
            alone, whole = time_once(statement)
            imports[name].append(alone)
            wholes[name].append(whole)
    print(f"{'statement':28s} {'import':>9s} {'process':>9s}   (medians of {args.runs})")
    for name in STATEMENTS:
        print(f"{name:28s} {median(imports[name]):6.1f} ms {median(wholes[name]):6.1f} ms")
    for ours, bases in (
        ("from chinwag import Client", ("import httpx", "import openai")),
        ("Client() as well", ("httpx.Client() as well", "openai.OpenAI() as well")),
    ):
        for base in bases:
            ratios = [a / b for a, b in zip(imports[ours], imports[base], strict=True)]
            print(f"{ours} / {base}: {median(ratios):.2f}x (median of per-run ratios)")
    print("target: the whole process of `from chinwag import Client` <= 100 ms (issue 17)")
    reproduce("bench_import.py", f"--runs {args.runs}")


if __name__ == "__main__":
    main()
