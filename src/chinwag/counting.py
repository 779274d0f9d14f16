"""Counting words, and estimating tokens where a provider reports none."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# About four characters a token for English with BPE tokenizers; tokens per message
# cover the role and separators the chat format adds.
_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4


def count_words(text: str) -> int:
    return len(text.split())


def estimate_tokens(text: str) -> int:
    return estimate_chars(len(text))


def estimate_chars(length: int) -> int:
    """The tokens in `length` characters of text."""
    return -(-length // _CHARS_PER_TOKEN)


def estimate_message_tokens(content: str) -> int:
    return estimate_tokens(content) + _TOKENS_PER_MESSAGE


def estimate_prompt_tokens(messages: Iterable[dict[str, Any]]) -> int:
    # A tool call's message may have no text: its arguments count instead.
    return sum(estimate_message_tokens(str(m.get("content") or m.get("tool_calls") or ""))
               for m in messages) + 2  # fmt: skip
