"""Web search for turns that ask for it (aBLT's use_search, hugchat's web_search).

A search provider answers a query with results; the engine puts the top ones, with
their sources, into the model's context. SearXNG's JSON API is built in. A search URL
whose host resolves to an address that is not globally routable (private, loopback,
link-local, carrier-grade NAT, or an IPv6 form that embeds such an IPv4) is refused unless
`search.allow_private` is set: a server must not be steered into its own network. The
host is resolved once, and the request connects to an address that was checked, so a
resolver that answers differently the second time (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import anyio

from chinwag import plugins
from chinwag.config import SearchSettings
from chinwag.errors import ConfigError, ProviderConnectionError, ProviderTimeoutError, ResponseError
from chinwag.types import Source

if TYPE_CHECKING:
    import httpx


class SearchProvider(Protocol):
    async def search(self, query: str, limit: int) -> list[Source]: ...

    async def aclose(self) -> None: ...


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are the IPv4
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible ::a.b.c.d
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: local use only


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: mapped, 6to4, Teredo, NAT64, compatible."""
    found = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in _NAT64 or ip in _COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [v4 for v4 in found if v4 is not None]


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address is globally routable unicast, and so is every IPv4 it embeds."""
    if not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        # Python 3.11 counts these as global; the routers they lead to are not.
        return ip not in _LOCAL_NAT64 and all(_public(v4) for v4 in _embedded_ipv4(ip))
    return True


async def check_public(url: str, allow_private: bool) -> list[str]:
    """Resolve the URL's host once and refuse it if any address is not public.

    Returns the checked addresses, for the request to connect to instead of resolving
    again; with `allow_private` nothing is resolved and the list is empty.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"search.url {url!r} is not an http(s) URL with a host: use http(s)://host/.",
            key="search.url",
        )
    if allow_private:
        return []
    host = parts.hostname
    try:
        infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:  # ValueError: a name IDNA cannot encode
        raise ProviderConnectionError(f"Cannot resolve the search host {host!r}: {exc}.") from exc
    # The scope of a link-local IPv6 address ("%eth0") goes: such addresses are refused.
    addresses = list(
        dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%", 1)[0]) for i in infos)
    )
    if not addresses:
        raise ProviderConnectionError(f"Cannot resolve the search host {host!r}: no address.")
    refused = sorted(str(ip) for ip in addresses if not _public(ip))
    if refused:
        raise ConfigError(
            f"search.url {url!r} resolves to an address that is not public "
            f"({', '.join(refused)}): private or loopback addresses are refused. "
            "If you run that SearXNG yourself, set search.allow_private: true.",
            key="search.url",
        )
    return [str(ip) for ip in addresses]


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

        addresses = await check_public(self.url, self.settings.allow_private)
        if self._http is None:
            # A proxy from the environment would resolve the host itself, past the check:
            # with the guard on, an explicit transport connects directly (env proxies are
            # only read when no transport is given; SSL_CERT_FILE still is).
            transport = None if self.settings.allow_private else httpx.AsyncHTTPTransport()
            self._http = httpx.AsyncClient(
                timeout=self.settings.timeout, follow_redirects=False, transport=transport
            )
        client: httpx.AsyncClient = self._http  # type: ignore[assignment]
        try:
            url = httpx.URL(f"{self.url}/search", params={"q": query, "format": "json"})
        except httpx.InvalidURL as exc:
            raise ConfigError(
                f"search.url {self.url!r} is not a valid URL: {exc}.", key="search.url"
            ) from exc
        try:
            response = await _get(client, url, addresses)
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(f"The search at {self.url} did not answer in time.") from exc
        except httpx.TransportError as exc:
            raise ProviderConnectionError(
                f"Could not reach the search at {self.url}: {exc}."
            ) from exc
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


async def _get(client: httpx.AsyncClient, url: httpx.URL, addresses: list[str]) -> httpx.Response:
    """GET the URL; with checked addresses, connect to those (in turn), never to a new lookup.

    The URL's host becomes the address, while the Host header and the TLS server name
    (which the certificate is verified against) stay the original host's.
    """
    import httpx

    if not addresses:
        return await client.get(url)
    headers = {"Host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    failure: httpx.ConnectError | None = None
    for address in addresses:
        try:
            return await client.get(
                url.copy_with(host=address), headers=headers, extensions=extensions
            )
        except httpx.ConnectError as exc:  # refused or unreachable: try the next address
            failure = exc
    assert failure is not None
    raise failure


def create_search(settings: SearchSettings) -> SearchProvider:
    """The backend `search.provider` names: searxng, or one a plugin registered."""
    found = plugins.find("register_search_backends", settings.provider)
    if found is None:
        known = ", ".join(sorted(plugins.registered("register_search_backends")))
        raise ConfigError(
            f"Unknown search.provider {settings.provider!r} (known: {known}): install the "
            f"plugin that provides it{plugins.see_broken('register_search_backends')}.",
            key="search.provider",
        )
    backend: SearchProvider = found.value(settings)
    return backend


def context_block(query: str, sources: list[Source]) -> str:
    """The results as the model sees them, numbered so it can cite them."""
    lines = [f"Web search results for {query!r}. Use them, and cite them as [n]:"]
    for n, source in enumerate(sources, 1):
        lines.append(f"[{n}] {source.title} ({source.url})\n{source.snippet}".rstrip())
    return "\n\n".join(lines)


__all__ = ["SearchProvider", "SearxngSearch", "check_public", "context_block", "create_search"]
