"""Building the context a model sees: system prompt, then as much history as fits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chinwag.counting import estimate_message_tokens


@dataclass(slots=True)
class Context:
    messages: list[dict[str, str]]
    trimmed: int  # history messages left out, oldest first


def build_context(
    *,
    system: str | None,
    history: Sequence[tuple[str, str]],
    prompt: str,
    window: int,
    reserve: int,
) -> Context:
    """The messages to send: the system prompt and the prompt always, then the newest
    history that fits in `window - reserve` tokens, dropped whole turns at a time."""
    budget = window - reserve - estimate_message_tokens(prompt)
    if system:
        budget -= estimate_message_tokens(system)
    kept: list[tuple[str, str]] = []
    used = 0
    for role, content in reversed(history):
        cost = estimate_message_tokens(content)
        if used + cost > budget:
            break
        kept.append((role, content))
        used += cost
    kept.reverse()
    # Never start on an assistant message: its question was dropped.
    while kept and kept[0][0] == "assistant":
        kept.pop(0)
    messages = [{"role": "system", "content": system}] if system else []
    messages.extend({"role": role, "content": content} for role, content in kept)
    messages.append({"role": "user", "content": prompt})
    return Context(messages, len(history) - len(kept))
