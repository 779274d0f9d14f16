"""Showing an answer as it streams: plain text to pipes, live Markdown on a terminal."""

from __future__ import annotations

import sys
from typing import Any, TextIO


class AnswerPrinter:
    """Feed it text deltas; it prints them as plain text or re-renders Markdown live."""

    def __init__(self, markdown: bool | None = None, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.markdown = self.out.isatty() if markdown is None else markdown
        self.text = ""
        self._live: Any = None
        self._shown = 0  # the text before a pause stays printed; after it, renders anew

    def __enter__(self) -> AnswerPrinter:
        if self.markdown:
            from rich.console import Console
            from rich.live import Live
            from rich.markdown import Markdown

            self._markdown = Markdown
            self._live = Live(
                Markdown(""), console=Console(file=self.out), refresh_per_second=12,
                vertical_overflow="visible",
            )  # fmt: skip
            self._live.__enter__()
        return self

    def _render(self) -> Any:
        return self._markdown(self.text[self._shown :])

    def add(self, delta: str) -> None:
        self.text += delta
        if self._live is not None:
            self._live.update(self._render())
        else:
            self.out.write(delta)
            self.out.flush()

    def pause(self) -> None:
        """Stop re-rendering, so that a question can be asked below the answer."""
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            self._shown = len(self.text)
        else:
            self.out.flush()

    def resume(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.start()

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(None, None, None)
        elif not self.text.endswith("\n"):
            self.out.write("\n")
            self.out.flush()


def echo_err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
