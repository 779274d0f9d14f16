"""Web search against a local server that speaks SearXNG's JSON API."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from chinwag import AsyncClient, Bot, Config
from chinwag.types import SearchEvent, TextDelta
from tests.conftest import Runner, make_config
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.anyio

RESULTS = [
    {"title": f"Page {n}", "url": f"https://example.invalid/{n}", "content": f"Fact number {n}."}
    for n in range(1, 8)
]


def search_config(server: FakeOpenAI, **values: Any) -> Config:
    settings = {
        "search.url": server.base_url.removesuffix("/v1"),
        "search.allow_private": True,  # the test server is on loopback
        "search.results": 3,
        **values,
    }
    return make_config(server, **settings)


async def test_results_go_into_the_context_and_the_reply_carries_them(
    server: FakeOpenAI,
) -> None:
    server.search_results = RESULTS
    async with AsyncClient(search_config(server)) as client:
        stream = client.stream("What is new?", search=True)
        events = [event async for event in stream.events()]
        reply = stream.reply
        history = await client.conversations.history(reply.conversation_id)
    assert server.searches == ["What is new?"]
    steps = [e for e in events if isinstance(e, SearchEvent)]
    assert [s.step for s in steps] == ["searching", "results"]
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert events.index(steps[-1]) < first_text  # search steps stream before the answer
    system = server.requests[-1]["messages"][0]["content"]
    assert "[1] Page 1 (https://example.invalid/1)\nFact number 1." in system
    assert "[3] Page 3" in system
    assert "Page 4" not in system  # search.results = 3
    assert [s.url for s in reply.sources] == [r["url"] for r in RESULTS[:3]]
    assert history[-1].meta["sources"][0]["title"] == "Page 1"
    assert history[0].meta == {"search": True}


async def test_the_bot_search_flag_and_the_call_override(server: FakeOpenAI) -> None:
    server.search_results = RESULTS[:1]
    searcher = Bot(uid="s", slug="searcher", name="Searcher", search=True)
    async with AsyncClient(search_config(server)) as client:
        with_bot = await client.ask("bot searches", bot=searcher)
        without = await client.ask("not this time", bot=searcher, search=False)
        plain = await client.ask("plain question")
    assert server.searches == ["bot searches"]
    assert len(with_bot.sources) == 1
    assert without.sources == plain.sources == []


async def test_a_loopback_search_url_is_refused_unless_allowed(server: FakeOpenAI) -> None:
    server.search_results = RESULTS
    config = search_config(server, **{"search.allow_private": False})
    async with AsyncClient(config) as client:
        stream = client.stream("anything", search=True)
        events = [event async for event in stream.events()]
    failed = [e for e in events if isinstance(e, SearchEvent) and e.step == "failed"]
    assert failed
    assert "private or loopback" in (failed[0].error or "")
    assert "search.allow_private" in (failed[0].error or "")
    assert server.searches == []  # nothing was sent there
    assert stream.reply.text == "You said: anything"  # the turn still answers


async def test_a_broken_or_missing_search_never_fails_the_turn(server: FakeOpenAI) -> None:
    server.search_status = 500
    async with AsyncClient(search_config(server)) as client:
        events = [e async for e in client.stream("q", search=True).events()]
    failed = next(e for e in events if isinstance(e, SearchEvent) and e.step == "failed")
    assert "answered 500" in (failed.error or "")
    async with AsyncClient(make_config(server)) as client:  # no search.url at all
        events = [e async for e in client.stream("q", search=True).events()]
    failed = next(e for e in events if isinstance(e, SearchEvent) and e.step == "failed")
    assert "set search.url" in (failed.error or "")


def test_ask_search_prints_sources(run: Runner, server: FakeOpenAI) -> None:
    server.search_results = RESULTS[:2]
    run.env["CHINWAG_SEARCH__URL"] = server.base_url.removesuffix("/v1")
    run.env["CHINWAG_SEARCH__ALLOW_PRIVATE"] = "true"
    out = run("--search", "news?")
    assert out.stdout.endswith(
        "Sources:\n[1] Page 1: https://example.invalid/1\n[2] Page 2: https://example.invalid/2\n"
    )
    assert server.searches == ["news?"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8888/",
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://172.16.5.4/",
        "http://169.254.169.254/",  # the cloud metadata service
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://localhost/",
        "http://100.100.100.200/",  # Alibaba Cloud's metadata service (carrier-grade NAT)
        "http://100.64.0.1/",
        "http://[2002:a00:1::1]/",  # 6to4 around 10.0.0.1
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
        "http://[64:ff9b::a00:1]/",  # NAT64 around 10.0.0.1
        "http://[::a00:1]/",  # IPv4-compatible 10.0.0.1
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
        "http://[fd00::1]/",  # unique local
        "http://[fe80::1]/",
        "http://224.0.0.1/",  # multicast
    ],
)
async def test_private_addresses_are_refused(url: str) -> None:
    from chinwag.errors import ConfigError
    from chinwag.search import check_public

    with pytest.raises(ConfigError, match="private or loopback"):
        await check_public(url, allow_private=False)
    await check_public(url, allow_private=True)  # config can allow them explicitly


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.215.14/",
        "http://8.8.8.8:8080/",
        "https://[2606:4700:4700::1111]/",
        "https://[2002:808:808::1]/",  # 6to4 around a public IPv4
    ],
)
async def test_a_public_address_is_allowed(url: str) -> None:
    from chinwag.search import check_public

    await check_public(url, allow_private=False)  # nothing is sent


# -- DNS rebinding: the request goes to the address that was checked ----------------------

PUBLIC = "93.184.215.14"  # what search.test resolves to first; never connected to
UNREACHABLE = "2606:4700:4700::1111"  # a public address whose connection is always refused


class FakeNetwork:
    """A resolver that answers `first` for search.test once and 127.0.0.1 after (DNS
    rebinding), and a connect that records every target. The public addresses never reach
    the real network: they are refused, or PUBLIC stands for a local server on `public_port`.
    """

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        public_port: int | None = None,
        first: tuple[str, ...] = (PUBLIC,),
    ) -> None:
        self.lookups = 0
        self.targets: list[str] = []
        real_getaddrinfo = socket.getaddrinfo
        real_connect = anyio.connect_tcp

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else host
            if name != "search.test":
                return real_getaddrinfo(host, port, *args, **kwargs)
            self.lookups += 1
            answers = first if self.lookups == 1 else ("127.0.0.1",)
            return [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, int(port or 0), 0, 0))
                if ":" in a
                else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, int(port or 0)))
                for a in answers
            ]

        async def connect_tcp(remote_host: Any, remote_port: int, **kwargs: Any) -> Any:
            self.targets.append(str(remote_host))
            if remote_host in (PUBLIC, UNREACHABLE):
                if remote_host == UNREACHABLE or public_port is None:
                    raise ConnectionRefusedError(111, "Connection refused (test)")
                remote_host, remote_port = "127.0.0.1", public_port
            return await real_connect(remote_host, remote_port, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(anyio, "connect_tcp", connect_tcp)

    @property
    def search_targets(self) -> list[str]:
        """Where connections went, leaving out the provider's own (to 127.0.0.1 by IP)."""
        return [t for t in self.targets if t != "127.0.0.1"]


async def test_dns_rebinding_never_reaches_the_loopback_server(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.search_results = RESULTS
    network = FakeNetwork(monkeypatch)
    config = search_config(
        server,
        **{"search.url": f"http://search.test:{server.port}/", "search.allow_private": False},
    )
    async with AsyncClient(config) as client:
        stream = client.stream("anything", search=True)
        with anyio.fail_after(30):
            events = [event async for event in stream.events()]
    failed = [e for e in events if isinstance(e, SearchEvent) and e.step == "failed"]
    assert len(failed) == 1
    assert "Could not reach the search at http://search.test" in (failed[0].error or "")
    assert server.searches == []  # the second answer, 127.0.0.1, was never asked
    assert network.lookups == 1  # resolved once, for the check
    assert network.search_targets == [PUBLIC]  # the checked address, not the name again
    assert stream.reply.text == "You said: anything"  # the turn still answers


async def test_an_unreachable_checked_address_falls_back_to_the_next_one(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.search_results = RESULTS
    network = FakeNetwork(monkeypatch, public_port=server.port, first=(UNREACHABLE, PUBLIC))
    config = search_config(
        server,
        **{"search.url": f"http://search.test:{server.port}/", "search.allow_private": False},
    )
    async with AsyncClient(config) as client:
        with anyio.fail_after(30):
            reply = await client.ask("anything", search=True)
    assert server.searches == ["anything"]  # reached through PUBLIC, which stands for it
    assert len(reply.sources) == 3
    assert network.search_targets == [UNREACHABLE, PUBLIC]


class TLSSearch:
    """A SearXNG-style HTTPS server on loopback whose certificate names search.test only."""

    def __init__(self, folder: Path) -> None:
        self.cert = folder / "cert.pem"
        key = folder / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=search.test",
             "-addext", "subjectAltName=DNS:search.test", "-keyout", str(key),
             "-out", str(self.cert)],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(self.cert, key)
        self.server_names: list[str | None] = []
        self.heads: list[str] = []
        self.context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            self.heads.append((await reader.readuntil(b"\r\n\r\n")).decode())
            body = json.dumps({"results": RESULTS[:1]}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        finally:
            writer.close()


async def test_https_search_keeps_the_host_name_for_the_certificate_and_the_host_header(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tls = TLSSearch(tmp_path)
    listener = await asyncio.start_server(tls.handle, "127.0.0.1", 0, ssl=tls.context)
    port = listener.sockets[0].getsockname()[1]
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.cert))  # trust the test certificate
    network = FakeNetwork(monkeypatch, public_port=port)  # PUBLIC is the TLS server
    config = search_config(
        server, **{"search.url": f"https://search.test:{port}/", "search.allow_private": False}
    )
    async with listener, AsyncClient(config) as client:
        with anyio.fail_after(30):
            reply = await client.ask("anything", search=True)
    assert [s.url for s in reply.sources] == [RESULTS[0]["url"]]  # the certificate verified
    assert network.search_targets == [PUBLIC]
    assert tls.server_names == ["search.test"]  # TLS names the host, not the address
    assert f"\r\nhost: search.test:{port}\r\n" in tls.heads[0].lower()
