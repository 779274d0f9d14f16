"""chinwag: talk to language models from Python, a shell or HTTP.

    import chinwag
    with chinwag.Client() as client:
        print(client.ask("Say hello!").text)

Names are imported on first use, so `import chinwag` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from chinwag.client import AsyncClient, Client
    from chinwag.config import Config
    from chinwag.errors import (
        AuthenticationError,
        BadRequestError,
        ChinwagError,
        ConfigError,
        ConnectionError,
        InputError,
        NotFoundError,
        ProviderError,
        RateLimitError,
        ResponseError,
        ServerError,
        StoreError,
        TimeoutError,
    )
    from chinwag.streams import AsyncStream, Stream
    from chinwag.types import (
        Bot,
        Conversation,
        Done,
        ErrorEvent,
        Event,
        GenerationParams,
        Health,
        Message,
        Reply,
        TextDelta,
        Usage,
        UsageEvent,
    )

_EXPORTS = {
    "chinwag.client": ("AsyncClient", "Client"),
    "chinwag.config": ("Config",),
    "chinwag.streams": ("AsyncStream", "Stream"),
    "chinwag.errors": (
        "AuthenticationError",
        "BadRequestError",
        "ChinwagError",
        "ConfigError",
        "ConnectionError",
        "InputError",
        "NotFoundError",
        "ProviderError",
        "RateLimitError",
        "ResponseError",
        "ServerError",
        "StoreError",
        "TimeoutError",
    ),
    "chinwag.types": (
        "Bot",
        "Conversation",
        "Done",
        "ErrorEvent",
        "Event",
        "GenerationParams",
        "Health",
        "Message",
        "Reply",
        "TextDelta",
        "Usage",
        "UsageEvent",
    ),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "AsyncClient",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "Bot",
    "ChinwagError",
    "Client",
    "Config",
    "ConfigError",
    "ConnectionError",
    "Conversation",
    "Done",
    "ErrorEvent",
    "Event",
    "GenerationParams",
    "Health",
    "InputError",
    "Message",
    "NotFoundError",
    "ProviderError",
    "RateLimitError",
    "Reply",
    "ResponseError",
    "ServerError",
    "StoreError",
    "Stream",
    "TextDelta",
    "TimeoutError",
    "Usage",
    "UsageEvent",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'chinwag' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*globals(), *__all__]
