"""The client an adapter runs on: chinwag's engine in-process, or a `chinwag serve`.

An adapter talks to a server when the old library was given its address (`base_url`), or
when chinwag's config names one (CHINWAG_URL, `server.url`), exactly as a Client does. Its
key is the one the old library was given (aBLT's bearer token, hugchat's cookies), else
CHINWAG_API_KEY or `server.api_key`. In-process no key is needed and a given one is unused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    from chinwag.client.aio import AsyncClient
    from chinwag.client.sync import Client
    from chinwag.config import Config


def client(
    config: Config | Mapping[str, Any] | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    verify: ssl.SSLContext | bool = True,
) -> Client:
    """A sync Client: against the server at `base_url` (or the config's), else in-process."""
    from chinwag.client.sync import Client

    return Client(config, base_url=base_url, api_key=api_key, verify=verify)


def async_client(
    config: Config | Mapping[str, Any] | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    verify: ssl.SSLContext | bool = True,
) -> AsyncClient:
    """An AsyncClient: against the server at `base_url` (or the config's), else in-process."""
    from chinwag.client.aio import AsyncClient

    return AsyncClient(config, base_url=base_url, api_key=api_key, verify=verify)


__all__ = ["async_client", "client"]
