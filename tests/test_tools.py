"""Tools: functions become tools, the engine runs call -> result -> answer, results are kept."""

from __future__ import annotations

import io
import json
from typing import Literal

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from chinwag import AsyncClient, Client, Config
from chinwag.cli.shell import Shell
from chinwag.errors import ProviderError
from chinwag.tools import tool
from chinwag.types import ToolCallEvent, ToolResultEvent
from tests.conftest import make_config
from tests.fake_openai import FakeOpenAI, Script

pytestmark = pytest.mark.anyio


def add(a: int, b: int = 1) -> int:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


async def weather(city: str, unit: Literal["C", "F"] = "C") -> dict[str, object]:
    """The weather in a city."""
    return {"city": city, "temperature": 21, "unit": unit}


def broken(x: str) -> str:
    """Always fails."""
    raise RuntimeError(f"cannot handle {x}")


def _call(name: str, arguments: dict[str, object], id: str = "call_1") -> dict[str, str]:
    return {"id": id, "name": name, "arguments": json.dumps(arguments)}


def test_a_function_becomes_a_tool_with_a_schema() -> None:
    made = tool(add)
    assert (made.name, made.description) == ("add", "Add two numbers.")
    assert made.parameters == {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "description": "The first number."},
            "b": {"type": "integer", "default": 1, "description": "The second number."},
        },
        "required": ["a"],
    }
    schema = tool(weather).schema()
    assert schema["function"]["parameters"]["properties"]["unit"]["enum"] == ["C", "F"]


async def test_call_result_answer(config: Config, server: FakeOpenAI) -> None:
    server.script(Script(tool_calls=[_call("add", {"a": 2, "b": 3})]), Script(text="The sum is 5."))
    async with AsyncClient(config) as client:
        stream = client.stream("What is 2 + 3?", tools=[add])
        events = [e async for e in stream.events()]
        reply = stream.reply
        history = await client.conversations.history(reply.conversation_id)
    assert reply.text == "The sum is 5."
    first, second = server.requests[-2:]
    assert first["tools"][0]["function"]["name"] == "add"
    assert second["messages"][-2]["tool_calls"][0]["function"]["arguments"] == '{"a": 2, "b": 3}'
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": "5"}
    call = next(e for e in events if isinstance(e, ToolCallEvent))
    result = next(e for e in events if isinstance(e, ToolResultEvent))
    assert (call.call.name, result.content, result.error) == ("add", "5", False)
    assert [(m.role, m.content) for m in history] == [
        ("user", "What is 2 + 3?"),
        ("assistant", ""),
        ("tool", "5"),
        ("assistant", "The sum is 5."),
    ]
    assert history[1].meta["tool_calls"][0]["name"] == "add"
    assert history[2].meta == {"tool_call_id": "call_1", "name": "add", "error": False}


async def test_async_tools_several_calls_and_a_plain_request(
    config: Config, server: FakeOpenAI
) -> None:
    server.script(
        Script(tool_calls=[_call("weather", {"city": "Oslo"}, "c1"), _call("add", {"a": 1}, "c2")]),
        Script(text="Done."),
    )
    async with AsyncClient(config) as client:
        reply = await client.ask("Weather in Oslo, and 1 + 1?", tools=[weather, add])
    assert reply.text == "Done."
    tool_messages = [m for m in server.requests[-1]["messages"] if m["role"] == "tool"]
    assert [json.loads(m["content"]) for m in tool_messages] == [
        {"city": "Oslo", "temperature": 21, "unit": "C"},
        2,
    ]
    assert "stream" not in server.requests[-1]  # ask makes plain requests, tools and all


async def test_a_failing_tool_tells_the_model(config: Config, server: FakeOpenAI) -> None:
    server.script(
        Script(tool_calls=[_call("broken", {"x": "this"})]),
        Script(tool_calls=[_call("nonexistent", {}, "c2")]),
        Script(tool_calls=[{"id": "c3", "name": "add", "arguments": "not json"}]),
        Script(text="Sorry, the tool failed."),
    )
    async with AsyncClient(config) as client:
        reply = await client.ask("try it", tools=[broken, add])
    results = [m["content"] for m in server.requests[-1]["messages"] if m["role"] == "tool"]
    assert results == [
        "Error: RuntimeError: cannot handle this",
        "Error: there is no tool named 'nonexistent'.",
        "Error: the arguments are not a JSON object (Expecting value: line 1 column 1 (char 0)).",
    ]
    assert reply.text == "Sorry, the tool failed."


async def test_the_chain_limit_stops_a_runaway_model(server: FakeOpenAI) -> None:
    server.default = Script(tool_calls=[_call("add", {"a": 1})])  # asks for tools forever
    async with AsyncClient(make_config(server, tool_rounds=2)) as client:
        with pytest.raises(ProviderError, match="more than 2 times") as caught:
            await client.ask("loop", tools=[add])
        partial = caught.value.partial
        assert partial is not None
        history = await client.conversations.history(partial.conversation_id)
    assert len(server.requests) == 3
    assert [m.role for m in history].count("tool") == 2
    assert history[-1].status == "error"


def test_the_shell_shows_tool_calls(config: Config, server: FakeOpenAI) -> None:
    server.script(Script(tool_calls=[_call("add", {"a": 2, "b": 2})]), Script(text="Four."))
    with Client(config) as client:
        client.bots.create(name="Calc")
        out = io.StringIO()
        with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
            pipe.send_text("add them\r/history\r/exit\r")
            shell = Shell(client, input=pipe, output=DummyOutput(), out=out, markdown=False)
            shell.bot = shell.bot.model_copy(update={"tools": []})
            original = client.stream
            client.stream = lambda text, **o: original(text, tools=[add], **o)  # type: ignore[method-assign]
            shell.run()
    shown = out.getvalue()
    assert '[tool add({"a": 2, "b": 2})]' in shown
    assert "[result: 4]" in shown
    assert "Four." in shown
    assert "tool: 4" in shown  # /history lists the tool's result


def test_what_was_said_before_a_slow_tool_is_kept_while_it_runs(server: FakeOpenAI) -> None:
    import threading

    running, release = threading.Event(), threading.Event()

    def slow(x: str) -> str:
        """Think for a while."""
        running.set()
        release.wait(30)
        return f"thought about {x}"

    server.script(
        Script(text="let me check", tool_calls=[_call("slow", {"x": "tea"})]),
        Script(text="Done."),
    )
    with Client(make_config(server)) as client:
        answer = client.ask("think", tools=[slow], wait=False)
        assert running.wait(10)
        cid = client.conversations.list()[0].id
        # While the tool runs, the stored branch shows what was said and the call.
        history = client.conversations.history(cid)
        release.set()
        assert answer.result(timeout=30).text == "Done."
    said = [m for m in history if m.role == "assistant"]
    assert [m.content for m in said] == ["let me check"]
    assert said[0].meta["tool_calls"][0]["name"] == "slow"
