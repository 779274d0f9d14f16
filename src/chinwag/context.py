"""Building the context a model sees: system prompt, then as much history as fits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from chinwag import attachments
from chinwag.counting import estimate_message_tokens
from chinwag.types import Attachment


class Entry(NamedTuple):
    """A message the model reads: its role, its text and the files attached to it."""

    role: str
    content: str
    files: tuple[Attachment, ...] = ()


def fit(
    *,
    system: str | None,
    history: Sequence[Entry],
    question: Entry,
    window: int,
    reserve: int,
    images: bool,
) -> tuple[list[Entry], int]:
    """The newest history that fits in `window - reserve` tokens beside the system prompt
    and the question (which always go), dropped whole turns at a time; and how many
    history messages were left out."""
    budget = window - reserve - _cost(question, images)
    if system:
        budget -= estimate_message_tokens(system)
    kept: list[Entry] = []
    used = 0
    for entry in reversed(history):
        cost = _cost(entry, images)
        if used + cost > budget:
            break
        kept.append(entry)
        used += cost
    kept.reverse()
    # Never start on an assistant message: its question was dropped.
    while kept and kept[0].role == "assistant":
        kept.pop(0)
    return kept, len(history) - len(kept)


def tokens(system: str | None, entries: Sequence[Entry], *, images: bool) -> int:
    """The estimated tokens of a context, counted as `fit` counts them."""
    base = estimate_message_tokens(system) if system else 0
    return base + sum(_cost(e, images) for e in entries) + 2


def _cost(entry: Entry, images: bool) -> int:
    cost = estimate_message_tokens(entry.content)
    return cost + attachments.tokens(entry.files, images=images) if entry.files else cost


def messages(
    system: str | None,
    entries: Sequence[Entry],
    data: Mapping[str, bytes],
    *,
    images: bool,
) -> list[dict[str, Any]]:
    """The messages to send: the system prompt, then the entries with their files (`data`
    holds the bytes of those the model sees)."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for e in entries:
        body = attachments.content(e.content, e.files, data, images=images)
        out.append({"role": e.role, "content": body})
    return out
