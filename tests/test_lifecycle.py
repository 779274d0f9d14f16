"""A Client that is never closed: the program still exits, and keeps what it streamed."""

from __future__ import annotations

import contextlib
import gc
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import CancelledError
from pathlib import Path

import anyio
import httpx
import pytest

import chinwag
from tests.conftest import Runner, make_config
from tests.fake_openai import FakeOpenAI, Script


def _child(code: str, run: Runner) -> subprocess.CompletedProcess[str]:
    """A Python program using chinwag, as a script would (titles on, as by default)."""
    env = {**run.env, "CHINWAG_TITLES": "true"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=env, timeout=20,
    )  # fmt: skip


def test_unclosed_client_exits_at_once(run: Runner) -> None:
    started = time.monotonic()
    done = _child("import chinwag; c = chinwag.Client(); print('x')", run)
    assert (done.returncode, done.stdout) == (0, "x\n"), done.stderr
    assert time.monotonic() - started < 15


def test_half_read_stream_and_pending_title_do_not_hold_the_exit(
    server: FakeOpenAI, run: Runner
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
    done = _child(code, run)
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


def test_client_dropped_inside_a_function(run: Runner) -> None:
    code = """
        import chinwag

        def once():
            client = chinwag.Client()
            return client.ask("hi").text

        print(once())
    """
    done = _child(code, run)
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


def _start_cli(run: Runner, prompt: str) -> subprocess.Popen[str]:
    # The crashed turn holds its conversation for 2 s, not the default 10.
    env = {**run.env, "CHINWAG_STORE__TURN_LEASE": "2"}
    return subprocess.Popen(
        [sys.executable, "-m", "chinwag", prompt],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=env,
    )  # fmt: skip


def test_kill_9_mid_answer_keeps_what_was_shown(server: FakeOpenAI, run: Runner) -> None:
    server.script(Script(text=" ".join(f"w{i}" for i in range(100)), chunk_delay=0.3))
    home = Path(run.env["CHINWAG_HOME"])  # the model is priced: a whole answer has a cost
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text("models:\n  test-model:\n    price: {input: 1, output: 2}\n")
    proc = _start_cli(run, "count slowly")
    assert proc.stdout is not None
    seen = ""
    while len(seen.split()) < 3:  # three words on the screen
        seen += proc.stdout.read(1)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    time.sleep(1.5)  # a crash may lose at most the last second (store.save_every)
    proc.kill()
    proc.wait(timeout=10)
    shown = seen + proc.stdout.read()
    with chinwag.Client(make_config(server)) as client:
        (conversation,) = client.conversations.list()
        question, answer = client.conversations.history(conversation.id)
        assert (question.content, answer.role, answer.status) == (
            "count slowly",
            "assistant",
            "partial",
        )
        assert len(answer.content.split()) >= 3
        assert shown.startswith(answer.content)
        # Cut off before its usage was known, it cost what nobody knows: unknown, not $0.
        assert (conversation.cost, conversation.unpriced) == (None, 1)
        # The next turn reads the partial answer after its question: no two questions in a row.
        client.ask("go on", conversation=conversation.id)
    roles = [m["role"] for m in server.requests[-1]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert server.requests[-1]["messages"][2]["content"] == answer.content


def test_a_question_left_unanswered_by_a_crash_is_said_so(server: FakeOpenAI, run: Runner) -> None:
    server.script(Script(text="never seen", delay=30))
    proc = _start_cli(run, "first question")
    deadline = time.monotonic() + 15
    while not server.requests and time.monotonic() < deadline:  # the model was asked
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=10)
    with chinwag.Client(make_config(server)) as client:
        (conversation,) = client.conversations.list()
        (question,) = client.conversations.history(conversation.id)
        assert question.content == "first question"
        client.ask("second question", conversation=conversation.id)
    sent = server.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert "No answer" in sent[2]["content"]
    assert [sent[1]["content"], sent[3]["content"]] == ["first question", "second question"]


@pytest.mark.parametrize("worker", ["thread", "pool"])
def test_work_in_the_programs_threads_finishes_before_exit(run: Runner, worker: str) -> None:
    start = {
        "thread": "threading.Thread(target=lambda: [c.ask(f'job {i}') for i in range(5)]).start()",
        "pool": "pool = ThreadPoolExecutor(2); [pool.submit(c.ask, f'job {i}') for i in range(5)]",
    }[worker]
    code = f"""
        import threading
        from concurrent.futures import ThreadPoolExecutor
        import chinwag
        c = chinwag.Client()
        {start}
        # the main thread ends here, as Python waits for the program's threads
    """
    done = _child(code, run)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    listed = run("conversations", "list", "-n", "50").stdout.splitlines()
    assert len(listed) == 5


def test_a_stream_of_a_closed_client_is_a_clear_error(server: FakeOpenAI) -> None:
    client = chinwag.Client(make_config(server))
    stream = client.stream("hi")
    client.close()
    with pytest.raises(chinwag.ChinwagError, match="This Client is closed"):
        list(stream)


def test_a_forked_child_is_told_to_make_its_own_client(run: Runner) -> None:
    code = """
        import os, chinwag
        c = chinwag.Client()
        c.ask("in the parent")
        pid = os.fork()
        if pid == 0:
            try:
                c.ask("in the child")
            except chinwag.ChinwagError as exc:
                print("child:", exc, flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
    """
    done = _child(code, run)
    assert done.returncode == 0, done.stderr
    assert "child: This Client was made in another process" in done.stdout


def test_closing_the_client_from_inside_a_tool_does_not_deadlock(run: Runner) -> None:
    code = """
        import chinwag
        client = chinwag.Client()

        def quit_now() -> str:
            \"\"\"Close the client.\"\"\"
            client.close()
            return "closed"

        try:
            client.ask("use the tool", tools=[quit_now])
        except BaseException as exc:
            print("ended:", type(exc).__name__, flush=True)
    """
    run.env["CHINWAG_TITLES"] = "false"
    started = time.monotonic()
    done = _child(code, run)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 15
    assert "Traceback" not in done.stderr


def test_an_async_stream_left_with_break_ends_quietly(run: Runner) -> None:
    code = """
        import asyncio, chinwag

        async def main():
            client = chinwag.AsyncClient()
            async for text in client.stream("count"):
                break
            print("left", flush=True)

        asyncio.run(main())
    """
    done = _child(code, run)
    assert (done.returncode, done.stdout) == (0, "left\n")
    assert done.stderr == ""


def test_a_stream_nobody_reads_lets_its_conversation_go(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chinwag.answer

    monkeypatch.setattr(chinwag.answer, "ABANDONED_AFTER", 1.0)
    config = make_config(server, **{"store.turn_lease": 1.5})
    with chinwag.Client(config) as client:
        cid = client.ask("start").conversation_id
        server.script(Script(text=" ".join(f"w{i}" for i in range(400)), chunk_delay=0.005))
        held = iter(client.stream("long", conversation=cid))
        next(held)  # read one word, then never again (and never close it)
        later = client.ask("next", conversation=cid, wait=False)
        assert later.result(timeout=30).text == "You said: next"


def test_calls_queued_while_the_client_closes_all_end(server: FakeOpenAI) -> None:
    """Futures handed out as the loop stops are answered or cancelled, never left waiting."""
    client = chinwag.Client(make_config(server))
    futures = [client.ask(f"question {n}", wait=False) for n in range(50)]
    closer = threading.Thread(target=client.close)
    closer.start()
    for _ in range(50):
        try:
            futures.append(client.ask("late", wait=False))
        except chinwag.ChinwagError:  # closed: said at once
            break
    closer.join(10)
    for future in futures:
        # Answered before the close, or cut off by it and said so; a timeout fails.
        with contextlib.suppress(chinwag.ChinwagError, CancelledError):
            future.result(timeout=10)
    assert all(future.done() for future in futures)


def _saved(client: chinwag.Client) -> tuple[str, str]:
    """The newest conversation's stored answer so far: (status, text)."""
    newest = client.conversations.list()[0]
    messages = client.conversations.history(newest.id)
    return (messages[-1].status, messages[-1].content) if len(messages) == 2 else ("", "")


@pytest.mark.parametrize("place", ["async with", "server"])
def test_a_streamed_answer_is_saved_while_it_runs(
    server: FakeOpenAI, run: Runner, place: str
) -> None:
    # Every store.save_every (1 s) while the answer grows, wherever the turn runs: a crash
    # then loses at most the last second of it.
    server.script(Script(text=" ".join(f"w{i}" for i in range(40)), chunk_delay=0.1))
    seen: list[str] = []
    saved: list[tuple[str, str]] = []
    with chinwag.Client(make_config(server)) as reader:

        def check() -> None:  # once 2.5 s of the answer have come
            saved.append(_saved(reader))

        if place == "async with":

            async def turn() -> None:
                async with chinwag.AsyncClient(make_config(server)) as client:
                    async for text in client.stream("count slowly"):
                        seen.append(text)
                        if len(seen) == 25:
                            check()

            anyio.run(turn)
        else:
            from tests.server import chinwag_serve

            with chinwag_serve(run.env) as (base, _):
                body = {"model": "default", "stream": True,
                        "messages": [{"role": "user", "content": "count slowly"}]}  # fmt: skip
                headers = {"x-chinwag-conversation": "new"}
                url = f"{base}/v1/chat/completions"
                with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as answer:
                    for line in answer.iter_lines():
                        if '"content":"w' in line or '"content":" w' in line:
                            seen.append(line)
                            if len(seen) == 25:
                                check()
    status, text = saved[0]
    assert status == "partial"  # saved as it grew, not only at its end
    assert len(text.split()) >= 10
