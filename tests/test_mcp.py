"""Tools from MCP servers (stdio and streamable HTTP), through the same tool loop."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chinwag import AsyncClient, Client
from chinwag.errors import ConfigError
from tests.conftest import make_config
from tests.fake_openai import FakeOpenAI, Script

pytestmark = pytest.mark.anyio
SERVER = str(Path(__file__).with_name("mcp_server.py"))


def _call(name: str, arguments: dict[str, object], id: str = "call_1") -> dict[str, str]:
    return {"id": id, "name": name, "arguments": json.dumps(arguments)}


def stdio(**more: Any) -> dict[str, Any]:
    return {"command": [sys.executable, SERVER], **more}


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, SERVER, "--http", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_a_bot_uses_a_stdio_servers_tools(server: FakeOpenAI, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    settings = stdio(env={"MCP_PIDFILE": str(pidfile)}, allow=True)
    server.script(Script(tool_calls=[_call("add", {"a": 2, "b": 3})]), Script(text="It is 5."))
    async with AsyncClient(make_config(server, **{"mcp.servers.notes": settings})) as client:
        bot = await client.bots.create(name="Notes", tools=["mcp:notes/*"])
        reply = await client.ask("What is 2 + 3?", bot=bot.slug)
        sent = {t["function"]["name"]: t["function"] for t in server.requests[-2]["tools"]}
        history = await client.conversations.history(reply.conversation_id)
        pid = int(pidfile.read_text())
    assert reply.text == "It is 5."
    assert sorted(sent) == ["add", "crash", "shout", "touch"]
    # The server's own schema, as it is.
    assert sent["add"]["parameters"]["required"] == ["a", "b"]
    assert sent["add"]["description"] == "Add two numbers."
    assert server.requests[-1]["messages"][-1] == {
        "role": "tool", "tool_call_id": "call_1", "content": "5"
    }  # fmt: skip
    assert [m.role for m in history] == ["user", "assistant", "tool", "assistant"]
    # Stopped with the client.
    assert _gone(pid, within=10)


async def test_one_tool_by_name_over_http(server: FakeOpenAI, http_server: str) -> None:
    server.script(Script(tool_calls=[_call("shout", {"text": "hi"})]), Script(text="Done."))
    config = make_config(server, **{"mcp.servers.web": {"url": http_server, "allow": ["shout"]}})
    async with AsyncClient(config) as client:
        bot = await client.bots.create(name="Loud", tools=["mcp:web/shout"])
        await client.ask("Shout hi", bot=bot.slug)
    assert [t["function"]["name"] for t in server.requests[-2]["tools"]] == ["shout"]
    assert server.requests[-1]["messages"][-1]["content"] == "HI"


async def test_a_tool_not_allowed_does_not_run(server: FakeOpenAI, tmp_path: Path) -> None:
    target = tmp_path / "made"
    server.script(
        Script(tool_calls=[_call("touch", {"path": str(target)})]), Script(text="Could not.")
    )
    async with AsyncClient(make_config(server, **{"mcp.servers.notes": stdio()})) as client:
        bot = await client.bots.create(name="Notes", tools=["mcp:notes/touch"])
        reply = await client.ask("Make the file", bot=bot.slug)
    said = server.requests[-1]["messages"][-1]["content"]
    assert "was not allowed to run" in said
    assert "mcp.servers.notes.allow" in said
    assert not target.exists()
    assert reply.text == "Could not."


async def test_a_server_that_fails_is_a_clear_error_and_others_work(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    broken = {"command": [sys.executable, "-c", "import sys; sys.exit(3)"], "timeout": 10}
    config = make_config(server, **{"mcp.servers.broken": broken, "mcp.servers.notes": stdio()})
    async with AsyncClient(config) as client:
        bot = await client.bots.create(name="Broken", tools=["mcp:broken/*"])
        with pytest.raises(ConfigError, match=r"MCP server 'broken'.*not running"):
            await client.ask("hello", bot=bot.slug)
        health = await client.health()
        server.script(Script(text="Still here."))
        assert (await client.ask("hello")).text == "Still here."
    states = {c.name: c for c in health.mcp}
    assert not states["mcp:broken"].ok
    assert "not running" in states["mcp:broken"].detail
    assert states["mcp:notes"].ok
    assert "add" in states["mcp:notes"].detail


async def test_unknown_servers_and_tools_say_what_exists(server: FakeOpenAI) -> None:
    async with AsyncClient(make_config(server, **{"mcp.servers.notes": stdio()})) as client:
        for tools, message in (
            (["mcp:nothere/*"], "No MCP server 'nothere' \\(mcp.servers: notes\\)"),
            (["mcp:notes/missing"], "has no tool 'missing' \\(it has: add, crash, shout, touch\\)"),
            (["mcp:notes"], "write mcp:SERVER/TOOL"),
        ):
            bot = await client.bots.create(name=f"B{len(message)}", tools=tools)
            with pytest.raises(ConfigError, match=message):
                await client.ask("hi", bot=bot.slug)


def test_a_server_needs_a_command_or_a_url(server: FakeOpenAI) -> None:
    with pytest.raises(ConfigError, match="either a command"):
        make_config(server, **{"mcp.servers.x": {"allow": True}}).settings  # noqa: B018


def in_the_shell(client: Client, bot: str, keys: str) -> str:
    """What the shell shows for these keystrokes (prompt_toolkit's pipe input)."""
    import io

    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from chinwag.cli.shell import Shell

    out = io.StringIO()
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text(keys)
        Shell(client, bot=bot, input=pipe, output=DummyOutput(), out=out, markdown=False).run()
    return out.getvalue()


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_sync_client_and_the_command_list_and_use_them(
    server: FakeOpenAI, home: Path, run: Any
) -> None:
    import yaml

    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "mcp": {
                    "servers": {
                        "notes": stdio(allow=True),
                        "gone": {"command": [sys.executable, "-c", "pass"], "timeout": 10},
                    }
                }
            }
        )
    )
    listed = run("tools", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert any(line.startswith("mcp:notes/add ") and "Add two numbers." in line for line in lines)
    assert any(line.startswith("mcp:gone/* ") and "unavailable" in line for line in lines)
    health = run("health").stdout
    assert any("ok" in line and "mcp:notes" in line for line in health.splitlines())
    assert any("DOWN" in line and "mcp:gone" in line for line in health.splitlines())
    server.script(Script(tool_calls=[_call("shout", {"text": "sync"})]), Script(text="SYNC."))
    with Client(make_config(server, **{"mcp.servers.notes": stdio(allow=True)})) as client:
        bot = client.bots.create(name="Notes", tools=["mcp:notes/shout"])
        assert client.ask("shout", bot=bot.slug).text == "SYNC."
    assert server.requests[-1]["messages"][-1]["content"] == "SYNC"


def test_the_shell_lists_and_allows_mcp_tools(server: FakeOpenAI, tmp_path: Path) -> None:
    target = tmp_path / "made"
    server.script(
        Script(tool_calls=[_call("touch", {"path": str(target)})]), Script(text="Refused."),
        Script(tool_calls=[_call("touch", {"path": str(target)})], ), Script(text="Made."),
    )  # fmt: skip
    config = make_config(server, **{"mcp.servers.notes": stdio()})
    with Client(config) as client:
        bot = client.bots.create(name="Notes", tools=["mcp:notes/touch"])
        # Asked before the first call: no. Then allowed by /tools: no question.
        keys = "/tools\rmake it\rn\r/tools allow mcp:notes/touch\r/tools\rmake it\r/exit\r"
        shown = in_the_shell(client, bot.slug, keys)
    assert "mcp:notes/touch  not allowed yet: /tools allow mcp:notes/touch" in shown
    assert "was not allowed to run" in shown  # the refused call, as the shell shows results
    assert "allowed: mcp:notes/touch" in shown
    assert "mcp:notes/touch  allowed" in shown
    assert "Made." in shown
    assert target.read_text() == "touched"


async def test_a_server_that_never_answers_times_out(server: FakeOpenAI) -> None:
    silent = {"command": [sys.executable, "-c", "import time; time.sleep(60)"], "timeout": 1}
    async with AsyncClient(make_config(server, **{"mcp.servers.silent": silent})) as client:
        bot = await client.bots.create(name="Silent", tools=["mcp:silent/*"])
        started = time.monotonic()
        with pytest.raises(ConfigError, match="did not start within 1 s"):
            await client.ask("hello", bot=bot.slug)
        assert time.monotonic() - started < 10


def test_the_shell_asks_before_an_mcp_tools_first_call(server: FakeOpenAI, tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    server.script(
        Script(tool_calls=[_call("touch", {"path": str(first)})]), Script(text="Made one."),
        Script(tool_calls=[_call("touch", {"path": str(second)})]), Script(text="Made two."),
    )  # fmt: skip
    with Client(make_config(server, **{"mcp.servers.notes": stdio()})) as client:
        bot = client.bots.create(name="Notes", tools=["mcp:notes/touch"])
        # Yes to the first call; the second call of the same tool does not ask.
        keys = "make one\ry\rmake two\r/exit\r"
        shown = in_the_shell(client, bot.slug, keys)
    assert first.read_text() == "touched"
    assert second.read_text() == "touched"
    assert "Made one." in shown
    assert "Made two." in shown


async def test_a_server_that_crashes_mid_call_is_started_again(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    settings = stdio(env={"MCP_PIDFILE": str(pidfile)}, allow=True)
    server.script(
        Script(tool_calls=[_call("crash", {})]), Script(text="It broke."),
        Script(tool_calls=[_call("add", {"a": 1, "b": 1})]), Script(text="Two."),
    )  # fmt: skip
    async with AsyncClient(make_config(server, **{"mcp.servers.notes": settings})) as client:
        bot = await client.bots.create(name="Notes", tools=["mcp:notes/*"])
        reply = await client.ask("crash it", bot=bot.slug)
        first_pid = int(pidfile.read_text())
        said = server.requests[-1]["messages"][-1]["content"]
        assert reply.text == "It broke."
        assert "The MCP server 'notes' failed" in said
        assert (await client.ask("1 + 1", bot=bot.slug)).text == "Two."
        assert server.requests[-1]["messages"][-1]["content"] == "2"
        assert int(pidfile.read_text()) != first_pid
        assert all(c.ok for c in (await client.health()).mcp)


def test_a_retry_in_the_shell_is_refused_at_once_not_left_waiting(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    target = tmp_path / "made"
    touch = Script(tool_calls=[_call("touch", {"path": str(target)})])
    server.script(touch, Script(text="Refused."), touch, Script(text="Refused again."))
    with Client(make_config(server, **{"mcp.servers.notes": stdio()})) as client:
        bot = client.bots.create(name="Notes", tools=["mcp:notes/touch"])
        # /retry shows no calls, so nobody could answer a question: config decides.
        keys = "make it\rn\r/retry\r/exit\r"
        started = time.monotonic()
        shown = in_the_shell(client, bot.slug, keys)
    assert time.monotonic() - started < 30
    assert "Refused again." in shown
    assert not target.exists()
