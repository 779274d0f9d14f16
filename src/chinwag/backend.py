"""What a client runs on: the engine in-process (chinwag.engine.Engine) or a chinwag
server (chinwag.remote.Remote). Both give turns, health and models the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from chinwag.config import Config
    from chinwag.types import Conversation, Event, Health


class Backend(Protocol):
    config: Config

    def turn(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        stream: bool = True,
        retry: bool = False,
        edit: str | None = None,
        **options: Any,
    ) -> AsyncIterator[Event]: ...

    async def health(self) -> Health: ...

    def set_system_prompt(self, model: str, prompt: str | None) -> None: ...

    async def models(self, provider: str | None = None) -> list[str]: ...

    async def settle(self) -> None: ...

    async def aclose(self, grace: float = 30.0) -> None: ...


class Renamer(Protocol):
    """What templates and workflows need of the conversations API: titles."""

    async def rename(
        self, conversation_id: str, title: str, *, user: str | int | None = None
    ) -> Conversation: ...


__all__ = ["Backend", "Renamer"]
