"""A Client that is never closed: the program still exits, and keeps what it streamed."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import chinwag
from tests.conftest import make_config
from tests.fake_openai import FakeOpenAI, Script


def _child(code: str, server: FakeOpenAI, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHINWAG_"))}
    env.update(
        CHINWAG_HOME=str(home),
        OPENAI_BASE_URL=server.base_url,
        CHINWAG_MODEL="test-model",
        CHINWAG_PROVIDERS__OPENAI__MAX_RETRIES="0",
    )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=env, timeout=20,
    )  # fmt: skip


def test_unclosed_client_exits_at_once(server: FakeOpenAI, home: Path) -> None:
    started = time.monotonic()
    done = _child("import chinwag; c = chinwag.Client(); print('x')", server, home)
    assert (done.returncode, done.stdout) == (0, "x\n"), done.stderr
    assert time.monotonic() - started < 15


def test_half_read_stream_and_pending_title_do_not_hold_the_exit(
    server: FakeOpenAI, home: Path
) -> None:
    server.script(
        Script(text="first answer"),
        Script(text="A title", delay=60),  # the title the first exchange asks for
        Script(chunks=[f" w{i}" for i in range(400)], chunk_delay=0.05),
    )
    code = """
        import time, chinwag
        client = chinwag.Client()  # titles on, as a script would have them
        first = client.ask("first question")
        time.sleep(0.5)  # the title request is now waiting on the server
        stream = client.stream("second question")
        seen = []
        for text in stream:
            seen.append(text)
            if len(seen) == 3:
                break
        print(first.conversation_id, "".join(seen), flush=True)
        # neither the stream nor the client is closed
    """
    started = time.monotonic()
    done = _child(code, server, home)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 15
    first_id, seen = done.stdout.split(" ", 1)
    with chinwag.Client(make_config(server)) as client:
        newest = client.conversations.list()[0]
        assert newest.id != first_id
        answer = client.conversations.history(newest.id)[-1]
        assert answer.role == "assistant"
        assert answer.status == "partial"
        assert answer.content.startswith(seen.strip("\n"))


def test_client_dropped_inside_a_function(server: FakeOpenAI, home: Path) -> None:
    code = """
        import chinwag

        def once():
            client = chinwag.Client()
            return client.ask("hi").text

        print(once())
    """
    done = _child(code, server, home)
    assert (done.returncode, done.stdout) == (0, "You said: hi\n"), done.stderr


def test_a_dropped_client_stops_its_thread(server: FakeOpenAI) -> None:
    def loops() -> int:
        return sum(t.name == "chinwag" for t in threading.enumerate())

    before = loops()
    client = chinwag.Client(make_config(server))
    assert client.ask("hello").text == "You said: hello"
    assert loops() == before + 1
    del client
    gc.collect()
    deadline = time.monotonic() + 10
    while loops() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert loops() == before
