"""`chinwag chat`: slash commands on prompt_toolkit's pipe input, Ctrl-C in a real pty."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from chinwag import Client, Config
from chinwag.cli.shell import Shell, SlashCompleter
from tests.conftest import PNG, default_sigint
from tests.fake_openai import FakeOpenAI, Script


@pytest.fixture
def client(config: Config) -> Iterator[Client]:
    with Client(config) as client:
        yield client


def run_shell(client: Client, *lines: str, **kwargs: object) -> str:
    """Type `lines` into a shell and return what it printed."""
    out = io.StringIO()
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text("".join(f"{line}\r" for line in [*lines, "/exit"]))
        Shell(client, input=pipe, output=DummyOutput(), out=out, markdown=False, **kwargs).run()  # type: ignore[arg-type]
    return out.getvalue()


def test_a_conversation_and_its_slash_commands(client: Client, server: FakeOpenAI) -> None:
    client.bots.create(name="Pirate", system_prompt="Arr.")
    server.script(Script(text="hello back"), Script(text="Another answer"))
    out = run_shell(
        client, "hello", "/retry", "/rename Greeting", "/list", "/history", "/title", "/stats"
    )
    assert "hello back" in out
    assert "Another answer" in out
    (conversation,) = client.conversations.list()
    assert conversation.title == "Greeting"
    assert f"* {conversation.id}  unknown  Greeting" in out  # its cost: the fake has no price
    assert "user: hello\nassistant: Another answer" in out  # history follows the new branch
    assert "today: 2 requests" in out

    out = run_shell(
        client, f"/switch {conversation.id}", "/edit hello, edited", "/bot pirate", "/bots",
        "/system Be brief.", "/model other-model", "with settings", "/config user",
    )  # fmt: skip
    assert "Switched to" in out
    assert "You said: hello, edited" in out
    assert "Now talking to Pirate." in out
    assert "* pirate" in out
    last = server.requests[-1]
    assert (last["model"], last["messages"][0]["content"]) == ("other-model", "Be brief.")
    assert '"local"' in out

    out = run_shell(client, "/new", "fresh start", "/delete", "/nonsense", "/rename", "/help")
    assert "New conversation." in out
    assert "Unknown command /nonsense" in out
    assert "usage: /rename TITLE" in out
    assert "/switch" in out  # help lists the commands
    assert len(client.conversations.list()) == 1  # the fresh one was deleted


def test_errors_keep_the_shell_running(client: Client, server: FakeOpenAI) -> None:
    client.config.set("providers.openai.max_retries", 0)
    server.script(Script(status=500))
    out = run_shell(client, "this fails", "/history", "this works")
    assert "error:" in out
    assert "[error]" in out  # the failed turn is in the history, the question kept
    assert "You said: this works" in out


def test_tab_completes_commands_bots_and_conversations(client: Client) -> None:
    client.bots.create(name="Pirate")
    reply = client.ask("hi")
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        shell = Shell(client, input=pipe, output=DummyOutput(), out=io.StringIO())
    completer = SlashCompleter(shell)

    def complete(text: str) -> list[str]:
        return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]

    assert complete("/sw") == ["/switch"]
    assert complete("/b") == ["/bot", "/bots"]
    assert complete("/bot p") == ["pirate"]
    assert complete(f"/switch {reply.conversation_id[:4]}") == [reply.conversation_id]
    assert complete("hello") == []
    folder = client.config.paths.data_dir
    (folder / "notes.txt").write_text("x")
    assert complete(f"/attach {folder}/no") == ["tes.txt"]  # file names, as the shell's


def test_attach_sends_files_with_the_next_question(
    client: Client, server: FakeOpenAI, tmp_path: Path
) -> None:
    note = tmp_path / "my notes.txt"
    note.write_text("Tea at five.\n")
    out = run_shell(
        client, f"/attach '{note}'", "What does it say?", "/history", "And now?",
        f"/attach {tmp_path}/nope.txt", f"/attach {tmp_path}", "/attach",
    )  # fmt: skip
    assert f"attached: {note}\nThey go with your next question (/attach off drops them)." in out
    first, second = (r["messages"][-1]["content"] for r in server.requests)
    assert first == "File: my notes.txt\n```\nTea at five.\n```\n\nWhat does it say?"
    assert second == "And now?"  # sent once, with the question after /attach
    assert "user: What does it say?\n  attached: my notes.txt (text/plain, 13 bytes)\n" in out
    assert f"usage: no file {tmp_path}/nope.txt" in out
    assert f"usage: {tmp_path} is a folder" in out
    assert "No files attached: /attach FILE... adds some" in out
    # What cannot be sent is said when it is attached, and it is not attached.
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)))
    out = run_shell(client, f"/attach {pdf}", "/attach")
    assert "usage: " in out
    assert "paper.pdf" in out.split("usage: ", 1)[1].splitlines()[0]
    assert "No files attached: /attach FILE... adds some" in out

    # Refused before it was stored: the files stay for the next question, until dropped.
    client.config.set("providers.openai.images", False)
    image = tmp_path / "cat.png"
    image.write_bytes(PNG)
    out = run_shell(client, f"/attach {image}", "Look", "/attach", "/attach off", "Plain")
    assert "error: The provider 'openai' (model test-model) takes no images" in out
    assert "(The attached files stay for your next question; /attach off drops them.)" in out
    assert out.count(f"attached: {image}") == 2  # when attached, and listed after the error
    assert "No files attached." in out
    assert server.requests[-1]["messages"][-1]["content"] == "Plain"
    assert len(server.requests) == 3


def test_ctrl_c_stops_the_answer_in_a_real_terminal(server: FakeOpenAI, home: Path) -> None:
    server.script(Script(text=" ".join(f"w{i}" for i in range(400)), chunk_delay=0.02))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHINWAG_"))}
    env.update(
        CHINWAG_HOME=str(home), OPENAI_BASE_URL=server.base_url, CHINWAG_MODEL="test-model",
        CHINWAG_TITLES="false", TERM="xterm", COLUMNS="100", LINES="40",
    )  # fmt: skip
    child = pexpect.spawn(
        sys.executable, ["-m", "chinwag", "chat"], env=env, encoding="utf-8", timeout=30,
        preexec_fn=default_sigint,
    )  # fmt: skip
    try:
        child.expect("default new>")
        child.sendline("count slowly")
        child.expect("w5")  # rendered as it streams
        child.sendcontrol("c")
        child.expect(r"stopped: the partial answer is kept")
        child.expect(">")
        child.sendline("/history")
        child.expect(r"assistant \[partial\]: w0 w1")
        child.expect("default [0-9a-f]{8}>")  # at the prompt: Ctrl-D before it would be lost
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    with Client(Config({"titles": False})) as client:
        (conversation,) = client.conversations.list()
        answer = client.conversations.history(conversation.id)[-1]
    assert answer.status == "partial"
    assert len(answer.content.split()) < 400


def test_multiline_input_and_the_history_file(client: Client, server: FakeOpenAI) -> None:
    out = io.StringIO()
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text("first line\x1b\rsecond line\r/exit\r")  # Esc-Enter: a new line
        Shell(client, input=pipe, output=DummyOutput(), out=out, markdown=False).run()
    assert server.requests[-1]["messages"][-1]["content"] == "first line\nsecond line"
    history = (client.config.paths.data_dir / "history").read_text()
    assert "+first line\n+second line" in history  # prompt_toolkit's FileHistory format


def test_ask_renders_markdown_live_on_a_terminal(server: FakeOpenAI, home: Path) -> None:
    server.script(Script(text="Some **bold** words and `code`"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHINWAG_"))}
    env.update(
        CHINWAG_HOME=str(home), OPENAI_BASE_URL=server.base_url, CHINWAG_MODEL="test-model",
        CHINWAG_TITLES="false", TERM="xterm", COLUMNS="100", LINES="40",
    )  # fmt: skip
    child = pexpect.spawn(sys.executable, ["-m", "chinwag", "hi"], env=env, encoding="utf-8")
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    shown = child.before
    assert child.exitstatus == 0
    assert "\x1b[1mbold" in shown  # bold, as the terminal shows it
    assert "**bold**" not in shown


def test_the_shell_titles_by_model_where_the_library_would_not(
    client: Client, server: FakeOpenAI
) -> None:
    client.config.set("titles", "auto")  # the default
    server.script(Script(text="hello back"), Script(text="Friendly Greeting"))
    run_shell(client, "hello")
    client.settle()
    (conversation,) = client.conversations.list()
    assert conversation.title == "Friendly Greeting"
