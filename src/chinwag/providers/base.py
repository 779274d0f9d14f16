"""The small async protocol every provider implements."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from chinwag.config import ProviderSettings
from chinwag.types import GenerationParams, TextDelta, ToolCall, UsageEvent


@dataclass(slots=True)
class ChatRequest:
    """What the engine asks a provider for: a model, the context and sampling params."""

    model: str
    messages: list[dict[str, Any]]  # OpenAI chat format, tool calls and results included
    params: GenerationParams = field(default_factory=GenerationParams)
    tools: list[dict[str, Any]] | None = None  # OpenAI function schemas
    tool_choice: str | dict[str, Any] | None = None  # as OpenAI takes it
    # False when nobody watches the text arrive (ask): a provider may answer in one piece.
    stream: bool = True


@dataclass(slots=True, frozen=True)
class Finish:
    """The provider's last word on a stream: why it stopped."""

    reason: str | None


@dataclass(slots=True, frozen=True)
class ToolCalls:
    """The model asks for these tools before it answers."""

    calls: list[ToolCall]


ProviderEvent = TextDelta | UsageEvent | ToolCalls | Finish


@dataclass(slots=True, frozen=True)
class ProviderHealth:
    name: str
    ok: bool
    latency_ms: float | None
    detail: str


@runtime_checkable
class Provider(Protocol):
    """Streams chat completions from one configured backend."""

    name: str
    settings: ProviderSettings

    def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        """Yield text deltas as they arrive, then usage (if known) and a Finish."""
        ...

    async def models(self) -> list[str]:
        """The model names this provider serves."""
        ...

    async def health(self) -> ProviderHealth:
        """Whether the provider is reachable, without paying for a completion."""
        ...

    def context_window(self, model: str) -> int | None:
        """The model's context size in tokens, if the provider knows it."""
        ...

    async def aclose(self) -> None: ...


def takes_images(provider: Provider, model: str) -> bool:
    """Whether a provider sends image parts to `model`: what its `takes_images(model)`
    says. A provider without that method (a plugin's, written before attachments) is sent
    text only, as the OpenAI format's plain string content."""
    declared = getattr(provider, "takes_images", None)
    return bool(declared(model)) if callable(declared) else False
