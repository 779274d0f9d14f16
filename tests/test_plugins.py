"""Plugins: one mechanism (chinwag.plugins) adds providers, tools, search backends and
commands; a plugin that fails is reported, and the others keep working."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chinwag import AsyncClient, Bot, Client, Config
from chinwag.errors import ConfigError
from chinwag.types import SearchEvent, Source
from tests.conftest import PluginSite, Runner, make_config
from tests.fake_openai import FakeOpenAI, Script

BROKEN_ON_IMPORT = 'raise RuntimeError("this plugin is broken on purpose")\n'

# Registers a good tool, then a bad one, then raises; its other hooks fail in other ways.
BROKEN_HOOKS = '''
from chinwag.plugins import hookimpl


class Thing:
    pass


def count(text: str) -> int:
    """How many characters the text has."""
    return len(text)


def weigh(thing: Thing) -> str:
    """No JSON schema can describe a Thing: this tool cannot be built."""
    return "heavy"


@hookimpl
def register_tools(register):
    register(count)
    register(weigh)
    register("not a function")
    raise ValueError("the hook broke halfway")


@hookimpl
def register_providers(register):
    raise RuntimeError("no providers today")


@hookimpl
def register_search_backends(register):
    register("searxng", object)  # a built-in name: refused


@hookimpl
def register_model(register):  # not a chinwag hook
    pass
'''

WRONG_ARGUMENTS = """
from chinwag.plugins import hookimpl


@hookimpl
def register_tools(add):  # the hook passes `register`
    pass
"""


@pytest.fixture
def broken_plugins(echo_plugin: PluginSite) -> PluginSite:
    """Next to the echo plugin: one that fails on import, one whose hooks fail."""
    echo_plugin.install(
        "chinwag-broken",
        {
            "broken-import": "chinwag_broken_import",
            "broken-hooks": "chinwag_broken_hooks",
            "wrong-arguments": "chinwag_wrong_arguments",
        },
        {
            "chinwag_broken_import": BROKEN_ON_IMPORT,
            "chinwag_broken_hooks": BROKEN_HOOKS,
            "chinwag_wrong_arguments": WRONG_ARGUMENTS,
        },
    )
    return echo_plugin


def _call(name: str, arguments: dict[str, object]) -> dict[str, str]:
    return {"id": "call_1", "name": name, "arguments": json.dumps(arguments)}


ECHO_BOT = Bot(uid="echo-bot", slug="echo", name="Echo", provider="mine")
ECHO_CONFIG = {"providers.mine.type": "echo", "providers.mine.model": "echo", "titles": False}


@pytest.mark.usefixtures("echo_plugin")
@pytest.mark.anyio
async def test_a_plugin_adds_a_provider() -> None:
    async with AsyncClient(Config(ECHO_CONFIG)) as client:
        reply = await client.ask("hi", bot=ECHO_BOT)
    assert reply.text == "echo: hi"
    assert reply.provider == "mine"
    assert reply.usage.estimated  # the plugin reports no usage: chinwag counts


@pytest.mark.usefixtures("echo_plugin")
@pytest.mark.anyio
async def test_a_plugin_adds_a_tool_that_bots_name(config: Config, server: FakeOpenAI) -> None:
    server.script(Script(tool_calls=[_call("shout", {"text": "hi"})]), Script(text="Done."))
    bot = Bot(uid="loud", slug="loud", name="Loud", tools=["shout"])
    async with AsyncClient(config) as client:
        reply = await client.ask("shout hi", bot=bot)
        assert reply.text == "Done."
        assert server.requests[0]["tools"][0]["function"]["name"] == "shout"
        assert server.requests[-1]["messages"][-1]["content"] == "HI"
        with pytest.raises(ConfigError, match=r"No tool named 'nope' .*\(tools: shout\)"):
            await client.ask("x", bot=Bot(uid="n", slug="n", name="N", tools=["nope"]))


@pytest.mark.usefixtures("echo_plugin")
@pytest.mark.anyio
async def test_a_plugin_adds_a_search_backend(server: FakeOpenAI) -> None:
    async with AsyncClient(make_config(server, **{"search.provider": "echo"})) as client:
        reply = await client.ask("cats", search=True)
    assert reply.sources == [
        Source(title="About cats", url="https://echo.example/", snippet="cats")
    ]
    assert "[1] About cats (https://echo.example/)" in json.dumps(server.requests[-1]["messages"])


def test_a_plugin_adds_a_command(echo_plugin: PluginSite, run: Runner) -> None:
    assert run("echo", "said", "twice").stdout == "said twice\n"
    assert "Print the words back." in run("--help").stdout
    assert run("echo", "--profile", "work", "x").stdout == "x\n"  # every command takes it
    listed = run("plugins")
    assert listed.returncode == 0, listed.stdout
    assert listed.stdout.splitlines()[-5:] == [
        "echo (chinwag-echo 1.0)",
        "  providers: echo",
        "  tools: shout",
        "  search backends: echo",
        "  commands: echo",
    ]


@pytest.mark.usefixtures("echo_plugin")
@pytest.mark.anyio
async def test_unknown_names_say_what_is_known(server: FakeOpenAI) -> None:
    config = make_config(server, **{"providers.x.type": "nonesuch", "search.provider": "nope"})
    async with AsyncClient(config) as client:
        with pytest.raises(ConfigError, match=r"Unknown provider type 'nonesuch' \(known: echo, "):
            await client.ask("hi", bot=Bot(uid="x", slug="x", name="X", provider="x"))
        events = [e async for e in client.stream("q", search=True).events()]
    failed = next(e for e in events if isinstance(e, SearchEvent) and e.step == "failed")
    assert "Unknown search.provider 'nope' (known: echo, searxng)" in (failed.error or "")


def test_a_broken_plugin_is_reported_and_the_others_keep_working(
    broken_plugins: PluginSite, run: Runner, config: Config
) -> None:
    with Client(config) as client:
        health = client.health()
    with Client(Config(ECHO_CONFIG)) as client:
        assert client.ask("hi", bot=ECHO_BOT).text == "echo: hi"
    assert health.ok  # a broken plugin fails only what uses it
    broken = {p.name: p.detail for p in health.broken_plugins}
    assert broken == {
        "broken-import": "cannot be loaded: RuntimeError: this plugin is broken on purpose",
        "broken-hooks": (
            "register_model is not a chinwag hook (hooks: register_providers, register_tools, "
            "register_search_backends, register_commands); "
            "register_providers raised RuntimeError: no providers today; "
            "register_tools: 'not a function' is not a function; "
            "register_tools raised ValueError: the hook broke halfway; "
            "register_search_backends: search backend 'searxng' is already "
            "registered by plugin 'chinwag'"
        ),
        "wrong-arguments": (
            "cannot be loaded: hookimpl definition: register_tools(add); Argument(s) {'add'} "
            "are declared in the hookimpl but can not be found in the hookspec"
        ),
    }
    listed = run("plugins")
    assert listed.returncode == 1
    assert (
        "BROKEN broken-import (chinwag-broken 1.0)\n"
        "  failed: cannot be loaded: RuntimeError: this plugin is broken on purpose\n"
    ) in listed.stdout
    assert "echo (chinwag-echo 1.0)\n  providers: echo\n" in listed.stdout
    shown = run("health")
    assert shown.returncode == 0
    assert "BROKEN plugin broken-import: cannot be loaded: RuntimeError" in shown.stdout
    assert run("echo", "still", "here").stdout == "still here\n"
    shown_help = " ".join(run("--help").stdout.split()).replace("- ", "-")  # unwrapped
    assert "failed plugins: broken-hooks, broken-import, wrong-arguments" in shown_help


@pytest.mark.anyio
async def test_one_broken_tool_does_not_break_the_others(
    broken_plugins: PluginSite, config: Config, server: FakeOpenAI
) -> None:
    server.script(Script(tool_calls=[_call("count", {"text": "four"})]), Script(text="4."))
    both = Bot(uid="b", slug="b", name="B", tools=["shout", "count"])
    async with AsyncClient(config) as client:
        with pytest.raises(ConfigError, match="The tool 'weigh' from plugin 'broken-hooks' cannot"):
            await client.ask("x", bot=Bot(uid="w", slug="w", name="W", tools=["weigh"]))
        reply = await client.ask("count four", bot=both)
        async with AsyncClient(Config(ECHO_CONFIG)) as echo:
            assert (await echo.ask("hi", bot=ECHO_BOT)).text == "echo: hi"
    assert reply.text == "4."
    assert [t["function"]["name"] for t in server.requests[0]["tools"]] == ["shout", "count"]
    assert server.requests[-1]["messages"][-1]["content"] == "4"


def test_built_in_commands_import_no_plugin(plugin_site: PluginSite, run: Runner) -> None:
    marker = plugin_site.root / "imported"
    plugin_site.install(
        "chinwag-noisy", {"noisy": "chinwag_noisy"},
        {"chinwag_noisy": f"open({str(marker)!r}, 'a').write('x')\n"},
    )  # fmt: skip
    assert run("config", "path").returncode == 0
    assert run("hello there").returncode == 0
    assert run("-b", "default", "hello there").returncode == 0
    assert not marker.exists()
    assert run("--help").returncode == 0  # lists every command: plugins load
    assert marker.read_text() == "x"


def test_plugins_lists_the_built_in_one(run: Runner, home: Path) -> None:
    out = run("plugins")
    assert out.returncode == 0
    assert out.stdout.splitlines()[:3] == [
        "chinwag (built in)",
        "  providers: openai, local",
        "  search backends: searxng",
    ]
