"""A provider plugin, registered through the `chinwag.providers` entry point by tests."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from chinwag.config import Paths, ProviderSettings
from chinwag.providers import ChatRequest, Finish, ProviderEvent, ProviderHealth
from chinwag.types import TextDelta


class EchoProvider:
    def __init__(self, name: str, settings: ProviderSettings, paths: Paths) -> None:
        self.name = name
        self.settings = settings

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        yield TextDelta(text=f"echo: {request.messages[-1]['content']}")
        yield Finish("stop")

    async def models(self) -> list[str]:
        return ["echo"]

    async def health(self) -> ProviderHealth:
        return ProviderHealth(self.name, True, 0.0, "always")

    def context_window(self, model: str) -> int | None:
        return None

    async def aclose(self) -> None:
        pass
