"""Client, the sync facade: parity with AsyncClient, threads, futures, closing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import anyio
import pytest

import chinwag
from chinwag import AsyncClient, Client, Config, Reply, Stream
from chinwag.errors import ChinwagError
from tests.conftest import make_config
from tests.fake_openai import FakeOpenAI, Script


class Driver(Protocol):
    async def ask(self, prompt: str, **options: Any) -> Reply: ...
    async def stream(self, prompt: str, **options: Any) -> tuple[list[str], Reply]: ...
    async def chat(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Reply: ...
    async def history(self, conversation_id: str) -> list[tuple[str, str, str]]: ...
    async def titles(self) -> int: ...


class AsyncDriver:
    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def ask(self, prompt: str, **options: Any) -> Reply:
        return await self.client.ask(prompt, **options)

    async def stream(self, prompt: str, **options: Any) -> tuple[list[str], Reply]:
        stream = self.client.stream(prompt, **options)
        return [d async for d in stream], stream.reply

    async def chat(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Reply:
        reply: Reply = await self.client.chat(messages, **options)
        return reply

    async def history(self, conversation_id: str) -> list[tuple[str, str, str]]:
        messages = await self.client.conversations.history(conversation_id)
        return [(m.role, m.content, m.status) for m in messages]

    async def titles(self) -> int:
        return len(await self.client.conversations.list())


class SyncDriver:
    """Runs Client's blocking calls in a worker thread, as a sync program would."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def ask(self, prompt: str, **options: Any) -> Reply:
        reply: Reply = await anyio.to_thread.run_sync(lambda: self.client.ask(prompt, **options))
        return reply

    async def stream(self, prompt: str, **options: Any) -> tuple[list[str], Reply]:
        def run() -> tuple[list[str], Reply]:
            stream = self.client.stream(prompt, **options)
            return list(stream), stream.reply

        return await anyio.to_thread.run_sync(run)

    async def chat(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Reply:
        return await anyio.to_thread.run_sync(lambda: self.client.chat(messages, **options))

    async def history(self, conversation_id: str) -> list[tuple[str, str, str]]:
        messages = await anyio.to_thread.run_sync(
            lambda: self.client.conversations.history(conversation_id)
        )
        return [(m.role, m.content, m.status) for m in messages]

    async def titles(self) -> int:
        return len(await anyio.to_thread.run_sync(self.client.conversations.list))


async def scenario(api: Driver, server: FakeOpenAI) -> list[Any]:
    """One script of calls; its transcript must not depend on the client kind."""
    out: list[Any] = []
    first = await api.ask("Say hello!")
    out.append((first.text, first.status, first.usage))
    second = await api.ask("And in French?", conversation=first.conversation_id, temperature=0.3)
    out.append((second.text, server.requests[-1]["messages"], server.requests[-1]["temperature"]))
    deltas, reply = await api.stream("Say three words about earth", system="Be brief.")
    out.append((deltas, reply.text, server.requests[-1]["messages"][0]))
    chat = await api.chat(
        [{"role": "system", "content": "Terse."}, {"role": "user", "content": "Hi"}]
    )
    out.append((chat.text, await api.history(chat.conversation_id)))
    server.script(Script(text="one two three", cut_after=1))
    with pytest.raises(chinwag.ProviderConnectionError) as cut:
        await api.stream("cut")
    partial = cut.value.partial
    out.append((partial.text, partial.status) if partial else None)
    with pytest.raises(chinwag.InputError) as empty:
        await api.ask("", user="bob")
    out.append(str(empty.value))
    out.append(await api.history(first.conversation_id))
    out.append(await api.titles())
    return out


@pytest.mark.anyio
async def test_sync_and_async_clients_behave_the_same(server: FakeOpenAI, tmp_path: Any) -> None:
    async_config = make_config(server, **{"store.url": f"sqlite:///{tmp_path / 'a.db'}"})
    async with AsyncClient(async_config) as aclient:
        async_transcript = await scenario(AsyncDriver(aclient), server)
    sync_config = make_config(server, **{"store.url": f"sqlite:///{tmp_path / 's.db'}"})
    with Client(sync_config) as client:
        sync_transcript = await scenario(SyncDriver(client), server)
    assert len(async_transcript) == 8
    assert sync_transcript == async_transcript


def test_one_client_shared_by_many_threads(config: Config, server: FakeOpenAI) -> None:
    with Client(config) as client, ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda i: client.ask(f"thread {i}"), range(40)))
        streamed = list(pool.map(lambda i: client.stream(f"s{i}").text(), range(16)))
        assert sorted(r.text for r in replies) == sorted(f"You said: thread {i}" for i in range(40))
        assert sorted(streamed) == sorted(f"You said: s{i}" for i in range(16))
        assert len(client.conversations.list(limit=100)) == 56


def test_wait_false_returns_a_future(config: Config, server: FakeOpenAI) -> None:
    with Client(config) as client:
        future = client.ask("later", wait=False)
        assert isinstance(future, Future)
        assert future.result(timeout=10).text == "You said: later"
        chat = client.chat([{"role": "user", "content": "hi"}], wait=False)
        assert chat.result(timeout=10).text == "You said: hi"


def test_breaking_out_of_a_sync_stream_stops_the_answer_and_keeps_it(
    config: Config, server: FakeOpenAI
) -> None:
    words = [f"w{i}" for i in range(3000)]
    server.script(Script(text=" ".join(words)))
    with Client(config) as client:
        received = []
        with client.stream("talk") as stream:
            for delta in stream:
                received.append(delta)
                if len(received) == 2:
                    break
        (conversation,) = client.conversations.list()
        last = client.conversations.history(conversation.id)[-1]
    assert last.status == "partial"
    assert last.content.startswith("".join(received))
    # Generation stopped within the read-ahead, not at the end of the answer.
    assert len(last.content.split()) <= len(received) + 2 * Stream.READ_AHEAD + 1


def test_a_slow_reader_gets_every_word_in_order(config: Config, server: FakeOpenAI) -> None:
    # The reader falls behind, so the turn fills its read-ahead and waits for room again
    # and again: every wait must end, and nothing may be lost or reordered.
    words = [f"w{i}" for i in range(5 * Stream.READ_AHEAD)]
    server.script(Script(text=" ".join(words)))
    with Client(config) as client:
        received = []
        stream = client.stream("talk")
        for delta in stream:
            received.append(delta)
            if len(received) % Stream.READ_AHEAD == 1:
                time.sleep(0.05)
        assert "".join(received) == " ".join(words)
        assert stream.reply.text == " ".join(words)
        assert stream.reply.status == "complete"


def test_closing_the_client_while_a_reader_waits_is_a_clear_error(
    config: Config, server: FakeOpenAI
) -> None:
    server.script(Script(chunks=[f" w{i}" for i in range(100)], chunk_delay=0.2))
    client = Client(config)
    stream = client.stream("slow")
    texts = iter(stream)
    received = [next(texts)]
    threading.Timer(0.3, client.close).start()
    started = time.monotonic()
    with pytest.raises(ChinwagError, match="This Client is closed"):
        received.extend(texts)
    assert time.monotonic() - started < 10
    assert len(received) < 100


def test_closed_client_says_so(config: Config) -> None:
    client = Client(config)
    client.close()
    client.close()  # closing twice is harmless
    with pytest.raises(ChinwagError, match="closed"):
        client.ask("hi")


def test_import_chinwag_loads_nothing_heavy() -> None:
    code = (
        "import sys, chinwag\n"
        "heavy = {'httpx', 'sqlalchemy', 'alembic', 'pydantic', 'anyio', 'yaml', 'openai'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
        "chinwag.Client\n"
        "print('httpx' in sys.modules, 'sqlalchemy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "False False"]


def test_from_chinwag_import_client_defers_the_engine_to_the_first_client(
    tmp_path: Path,
) -> None:
    # The import loads the facade alone; a Client loads the engine, and builds the pydantic
    # models its config needs, but no model of a reply, message or event until one is used.
    code = (
        "import sys\n"
        "from chinwag import Client\n"
        "heavy = {'pydantic', 'anyio', 'asyncio', 'httpx', 'sqlalchemy', 'yaml'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}),\n"
        "      'chinwag.engine' in sys.modules)\n"
        "client = Client()\n"
        "import pydantic, chinwag.types\n"
        "print([k.__name__ for k in vars(chinwag.types).values() if isinstance(k, type)\n"
        "       and issubclass(k, pydantic.BaseModel) and k.__pydantic_complete__],\n"
        "      'chinwag.engine' in sys.modules)\n"
        "client.close()\n"
    )
    env = {**os.environ, "CHINWAG_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split("\n")[:2] == ["[] False", "[] True"]
