"""Web search for turns that ask for it (aBLT's use_search, hugchat's web_search).

A search provider answers a query with results; the engine puts the top ones, with
their sources, into the model's context. SearXNG's JSON API is built in. A search URL
that resolves to a private, loopback or link-local address is refused unless
`search.allow_private` is set: a server must not be steered into its own network.
"""

from __future__ import annotations

import ipaddress
from typing import Protocol
from urllib.parse import urlsplit

import anyio

from chinwag.config import SearchSettings
from chinwag.errors import ConfigError, ConnectionError, ResponseError, TimeoutError
from chinwag.types import Source


class SearchProvider(Protocol):
    async def search(self, query: str, limit: int) -> list[Source]: ...

    async def aclose(self) -> None: ...


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return bool(
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
        or ip.is_multicast or ip.is_unspecified
    )  # fmt: skip


async def check_public(url: str, allow_private: bool) -> None:
    """Refuse a URL whose host resolves to a private address, unless allowed."""
    host = urlsplit(url).hostname
    if not host:
        raise ConfigError(f"search.url {url!r} has no host: use http(s)://host/.", key="search.url")
    if allow_private:
        return
    try:
        infos = await anyio.getaddrinfo(host, None)
    except OSError as exc:
        raise ConnectionError(f"Cannot resolve the search host {host!r}: {exc}.") from exc
    private = sorted({str(info[4][0]) for info in infos if _private(str(info[4][0]))})
    if private:
        raise ConfigError(
            f"search.url {url!r} resolves to a private or loopback address ({', '.join(private)}). "
            "If you run that SearXNG yourself, set search.allow_private: true.",
            key="search.url",
        )


class SearxngSearch:
    """SearXNG's JSON API: GET <url>/search?q=...&format=json."""

    def __init__(self, settings: SearchSettings) -> None:
        if not settings.url:
            raise ConfigError(
                "Search needs a SearXNG server: set search.url (e.g. https://searx.example/).",
                key="search.url",
            )
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self._http: object | None = None

    async def search(self, query: str, limit: int) -> list[Source]:
        import httpx

        await check_public(self.url, self.settings.allow_private)
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.settings.timeout, follow_redirects=False)
        client: httpx.AsyncClient = self._http  # type: ignore[assignment]
        try:
            response = await client.get(f"{self.url}/search", params={"q": query, "format": "json"})
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"The search at {self.url} did not answer in time.") from exc
        except httpx.TransportError as exc:
            raise ConnectionError(f"Could not reach the search at {self.url}: {exc}.") from exc
        if response.status_code != 200:
            raise ResponseError(
                f"The search at {self.url} answered {response.status_code}. Is it SearXNG "
                "with the JSON format enabled (search.formats: [html, json])?"
            )
        try:
            items = response.json()["results"]
            return [
                Source(title=str(i.get("title") or i["url"]), url=str(i["url"]),
                       snippet=str(i.get("content") or ""))
                for i in items[:limit]
            ]  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            raise ResponseError(
                f"The search at {self.url} sent results chinwag cannot read."
            ) from exc

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()  # type: ignore[attr-defined]
            self._http = None


def create_search(settings: SearchSettings) -> SearchProvider:
    if settings.provider == "searxng":
        return SearxngSearch(settings)
    raise ConfigError(
        f"Unknown search.provider {settings.provider!r}: chinwag knows searxng.",
        key="search.provider",
    )


def context_block(query: str, sources: list[Source]) -> str:
    """The results as the model sees them, numbered so it can cite them."""
    lines = [f"Web search results for {query!r}. Use them, and cite them as [n]:"]
    for n, source in enumerate(sources, 1):
        lines.append(f"[{n}] {source.title} ({source.url})\n{source.snippet}".rstrip())
    return "\n\n".join(lines)


__all__ = ["SearchProvider", "SearxngSearch", "check_public", "context_block", "create_search"]
