"""The client an adapter runs on: chinwag's engine in-process, or a `chinwag serve` when the
old library was given a server's address and a key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chinwag import checks
from chinwag.errors import ConfigError

if TYPE_CHECKING:
    from chinwag.client import AsyncClient, Client
    from chinwag.config import Config


def _remote(base_url: Any, api_key: Any) -> None:
    """Check a server's address and key; the remote client does the rest."""
    checks.key(base_url, "base_url")
    if api_key is not None:
        checks.key(api_key, "api_key")
    raise ConfigError(
        f"base_url={base_url!r}: talking to a chinwag server needs chinwag's remote client, "
        "which this version does not have yet. Leave base_url out to run in-process.",
        key="base_url",
        value=base_url,
    )


def client(
    config: Config | Mapping[str, Any] | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
) -> Client:
    """A sync Client: in-process, or against the server at `base_url` with `api_key`."""
    from chinwag.client import Client

    if base_url is not None:
        _remote(base_url, api_key)
    return Client(config)


def async_client(
    config: Config | Mapping[str, Any] | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
) -> AsyncClient:
    """An AsyncClient: in-process, or against the server at `base_url` with `api_key`."""
    from chinwag.client import AsyncClient

    if base_url is not None:
        _remote(base_url, api_key)
    return AsyncClient(config)


__all__ = ["async_client", "client"]
