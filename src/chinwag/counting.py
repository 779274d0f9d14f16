"""Counting words, and estimating tokens where a provider reports none."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# About four characters a token for English with BPE tokenizers; tokens per message
# cover the role and separators the chat format adds.
_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4
# An image part, whatever its size: OpenAI's price of a 1024x1024 image in detail
# (85 + 4 tiles x 170). Its pixels are not read to count them more closely.
IMAGE_TOKENS = 765


def count_words(text: str) -> int:
    return len(text.split())


def estimate_tokens(text: str) -> int:
    return estimate_chars(len(text))


def estimate_chars(length: int) -> int:
    """The tokens in `length` characters of text."""
    return -(-length // _CHARS_PER_TOKEN)


def estimate_message_tokens(content: str) -> int:
    return estimate_tokens(content) + _TOKENS_PER_MESSAGE


def text_of(content: Any) -> str:
    """A message's text: its content, or its text parts joined (image parts have none)."""
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return str(content or "")


def images_in(content: Any) -> int:
    """How many image parts a message's content holds."""
    if not isinstance(content, list):
        return 0
    return sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")


def estimate_prompt_tokens(messages: Iterable[dict[str, Any]]) -> int:
    # A tool call's message may have no text: its arguments count instead.
    return (
        sum(
            estimate_message_tokens(text_of(m.get("content")) or str(m.get("tool_calls") or ""))
            + IMAGE_TOKENS * images_in(m.get("content"))
            for m in messages
        )
        + 2
    )
