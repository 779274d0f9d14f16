"""The seed documents' examples, read from the documents themselves (../shared/seeds/).

Three shapes: LWE's reStructuredText has `.. code-block:: python` directives; aBLT's and
hugchat's pages were saved as plain text, so their code lines sit among the prose, and
aBLT's lost their indentation. `text_examples` finds runs of Python statements in such text
and restores block indentation from the `:` that opens a block and the `except`/`else`
that continue it (a block runs to the next such clause or the example's end: the
documents' blocks all end their example). `signatures` reads the `def` lines hugchat's page
lists. Only import lines and placeholders are rewritten before an example runs.
"""

from __future__ import annotations

import ast
import codeop
import contextlib
import io
import re
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SEEDS = Path(__file__).parents[1].parent / "shared" / "seeds"
_MAX_CONTINUATION = 30  # lines one statement may span (a bracket left open)
_HEADER = re.compile(r"^(try|finally|else|(except|elif|for|while|with|if)\b.*):$")
_CLAUSES = {"except": {"try"}, "finally": {"try"}, "elif": {"if"},
            "else": {"try", "for", "while", "if"}}  # fmt: skip


@dataclass(frozen=True)
class Example:
    """One example: its code, and the document line it starts on (1-based)."""

    code: str
    line: int


def seed_text(name: str) -> str:
    """A seed document's text; a missing document fails the test, never skips it."""
    path = SEEDS / name
    if not path.is_file():
        pytest.fail(
            f"The seed document {path} is missing. The tests read the examples from the seed "
            "documents in shared/seeds/ beside the checkout (CI puts shared/ there)."
        )
    return path.read_text(encoding="utf-8")


def rst_examples(text: str) -> list[Example]:
    """The bodies of the `.. code-block:: python` directives, dedented."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.strip() != ".. code-block:: python":
            continue
        indent = len(line) - len(line.lstrip())
        body: list[str] = []
        start = None
        for j in range(i + 1, len(lines)):
            current = lines[j]
            if current.strip() and len(current) - len(current.lstrip()) <= indent:
                break
            if current.strip() and start is None:
                start = j
            body.append(current)
        code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        ast.parse(code)  # a block the extractor cut wrongly fails here
        found.append(Example(code, (start or i) + 1))
    return found


def _compiles(source: str) -> bool | None:
    """True if `source` is complete Python, None if it needs more lines, False if it is not."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # prose such as "1 is not" warns
        try:
            return None if codeop.compile_command(source, "<seed>", "exec") is None else True
        except (SyntaxError, ValueError, OverflowError):
            return False


def _is_code(source: str) -> bool:
    """A statement that is code, not a word or phrase of prose that happens to parse."""
    statements = ast.parse(source).body
    if len(statements) != 1:
        return False
    node = statements[0]
    if isinstance(node, ast.Expr) and isinstance(
        node.value, ast.Name | ast.Attribute | ast.Constant
    ):
        return False  # a heading ("Usage") or a term ("language")
    return not (isinstance(node, ast.AnnAssign) and node.value is None)  # "structure: {...}"


def _statement(lines: list[str], i: int) -> tuple[str, int] | None:
    """The statement (or block header, or comment) starting at line i and the line after
    it; None if line i starts none."""
    first = lines[i].strip()
    if first.startswith("#") or _HEADER.match(first):
        return first, i + 1
    for j in range(i, min(i + _MAX_CONTINUATION, len(lines))):
        source = "\n".join(line.strip() for line in lines[i : j + 1])
        complete = _compiles(source)
        if complete is False:
            return None
        if complete:
            return (source, j + 1) if _is_code(source) else None
    return None


def _indented(items: list[str]) -> str:
    """Statements whose indentation was lost, indented again by their block headers."""
    out: list[str] = []
    depth = 0
    blocks: list[tuple[str, int]] = []  # open blocks: keyword and depth
    for item in items:
        word = re.split(r"[\s:(]", item, maxsplit=1)[0]
        if word in _CLAUSES and _HEADER.match(item):
            while blocks and blocks[-1][0] not in _CLAUSES[word]:
                blocks.pop()
            if not blocks:
                raise AssertionError(f"{item!r} continues no block")
            depth = blocks[-1][1]
            out.append("    " * depth + item)
            depth += 1
            continue
        out.extend("    " * depth + line for line in item.splitlines())
        if _HEADER.match(item) and not item.startswith("#"):
            blocks.append((word, depth))
            depth += 1
    return "\n".join(out) + "\n"


def text_examples(text: str) -> list[Example]:
    """Runs of Python statements in plain text; blank lines may sit inside a run, prose
    ends it. `def` signatures are left to `signatures`."""
    lines = text.splitlines()
    found: list[Example] = []
    run: list[str] = []
    start = 0

    def flush() -> None:
        if any(not item.startswith("#") for item in run):
            code = _indented(run)
            ast.parse(code)  # an example cut or indented wrongly fails here
            found.append(Example(code, start + 1))
        run.clear()

    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped:
            i += 1
            continue
        if stripped.startswith("def "):
            i = _signature_end(lines, i)
            flush()
            continue
        statement = _statement(lines, i)
        if statement is None:
            flush()
            i += 1
            continue
        if not run:
            start = i
        run.append(statement[0])
        i = statement[1]
    flush()
    return found


def _signature_end(lines: list[str], i: int) -> int:
    """The line after a `def` signature that starts at line i (its brackets closed)."""
    depth = 0
    for j in range(i, min(i + _MAX_CONTINUATION, len(lines))):
        depth += lines[j].count("(") - lines[j].count(")")
        if depth <= 0:
            return j + 1
    raise AssertionError(f"The signature on line {i + 1} never closes its brackets")


def signatures(text: str) -> list[ast.FunctionDef]:
    """The `def` signatures the text lists (without bodies), parsed."""
    lines = text.splitlines()
    found = []
    i = 0
    while i < len(lines):
        if not lines[i].strip().startswith("def "):
            i += 1
            continue
        end = _signature_end(lines, i)
        source = "\n".join(line.strip() for line in lines[i:end]).rstrip().removesuffix(":")
        node = ast.parse(source + ": ...").body[0]
        assert isinstance(node, ast.FunctionDef), source
        found.append(node)
        i = end
    return found


def rewrite_imports(code: str, modules: dict[str, str]) -> str:
    """The example with its imports of the old library's modules pointed at chinwag.compat;
    every other line stays exactly as written."""
    out = []
    for line in code.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("import ", "from ")):
            name = stripped.split()[1]
            if name in modules:
                line = line.replace(name, modules[name], 1)
            else:
                root = name.split(".")[0]
                assert not any(m.split(".")[0] == root for m in modules), (
                    f"An import the test does not know how to rewrite: {stripped}"
                )
        out.append(line)
    return "\n".join(out) + "\n"


class Output(io.StringIO):
    """stdout as an example wrote it, each write kept apart (a streamed chunk is one)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        if text:
            self.writes.append(text)
        return super().write(text)


def run(example: Example, namespace: dict[str, Any], document: str) -> Output:
    """Run an example in `namespace` (the examples of one document share one, as a reader
    typing them in order would); what it printed."""
    out = Output()
    with contextlib.redirect_stdout(out):
        exec(compile(example.code, f"<{document} line {example.line}>", "exec"), namespace)
    return out
