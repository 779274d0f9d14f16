"""Bots: built-in, YAML files in the config dir, saved per user; used by uid, slug or Bot."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chinwag import AsyncClient, Bot, Client, Config
from chinwag.errors import ConfigError, InputError, NotFoundError
from tests.conftest import make_config
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.anyio


def _bot_file(home: Path, name: str, text: str) -> Path:
    folder = home / "bots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


async def test_bots_come_from_builtins_files_and_the_store(
    config: Config, server: FakeOpenAI, home: Path
) -> None:
    _bot_file(home, "pirate", "name: Pirate\nsystem_prompt: Talk like a pirate.\nsearch: true\n")
    async with AsyncClient(config) as client:
        saved = await client.bots.create(
            name="Miles Hiker",
            description="Knows trails",
            model="other-model",
            system_prompt="You love hiking.",
            params={"temperature": 0.4},
            welcome_message="Where to?",
            avatar_url="https://example.invalid/miles.png",
        )
        slugs = [b.slug for b in await client.bots.list()]
        assert slugs == ["default", "pirate", "miles-hiker"]
        pirate = await client.bots.get(slug="pirate")
        assert pirate is not None
        assert pirate.search
        assert await client.bots.get(uid=saved.uid) == saved
        assert await client.bots.get(name="Miles Hiker") == saved
        assert await client.bots.get(slug="nobody") is None

        await client.ask("ahoy", bot="pirate")
        assert server.requests[-1]["messages"][0]["content"] == "Talk like a pirate."
        reply = await client.ask("a trail?", bot=saved.uid)
        request = server.requests[-1]
        assert request["model"] == "other-model"
        assert request["temperature"] == 0.4
        assert request["messages"][0]["content"] == "You love hiking."
        # The conversation keeps its bot when continued without bot=.
        await client.ask("and then?", conversation=reply.conversation_id)
        assert server.requests[-1]["model"] == "other-model"


async def test_a_name_shared_by_several_bots_is_an_error_listing_their_slugs(
    config: Config,
) -> None:
    async with AsyncClient(config) as client:
        await client.bots.create(name="Twin", slug="twin-a")
        await client.bots.create(name="Twin", slug="twin-b")
        with pytest.raises(InputError, match="twin-a, twin-b"):
            await client.bots.get(name="Twin")
        with pytest.raises(InputError, match="exists already"):
            await client.bots.create(name="Again", slug="twin-a")
        with pytest.raises(InputError, match="exists already"):
            await client.bots.create(name="Default")  # a built-in's slug


async def test_update_delete_and_export(config: Config, home: Path) -> None:
    _bot_file(home, "filed", "name: Filed\n")
    async with AsyncClient(config) as client:
        bot = await client.bots.create(name="Poet", system_prompt="Rhyme.")
        updated = await client.bots.update("poet", description="Writes verse", model="m2")
        assert (updated.uid, updated.description, updated.model) == (bot.uid, "Writes verse", "m2")
        exported = yaml.safe_load(await client.bots.export("poet"))
        assert exported["slug"] == "poet"
        assert exported["system_prompt"] == "Rhyme."
        assert exported["model"] == "m2"
        # An exported bot, dropped into the bots folder, is a file bot.
        _bot_file(home, "poet-copy", yaml.safe_dump({**exported, "slug": "poet-copy", "uid": "x"}))
        copy = await client.bots.get(slug="poet-copy")
        assert copy is not None
        assert copy.system_prompt == "Rhyme."
        with pytest.raises(InputError, match="built in"):
            await client.bots.update("default", name="Mine")
        with pytest.raises(InputError, match=r"edit .*filed\.yaml"):
            await client.bots.delete("filed")
        await client.bots.delete("poet")
        assert await client.bots.get(slug="poet") is None
        with pytest.raises(NotFoundError, match="Known bots"):
            await client.ask("hi", bot="poet")


_BROKEN_FILES = {
    "bad YAML": (b"name: Bad\n  params: [\n", r"line 2, column 9: mapping values"),
    "not a mapping": (b"- a list\n", "must hold a mapping of bot fields, not list"),
    "an invalid field": (b"name: Bad\nparams:\n  temperature: hot\n", "params.temperature"),
    "invalid UTF-8": (b"name: B\xe9b\n", r"not UTF-8 text \(byte 0xe9 on line 1\)"),
}


@pytest.mark.parametrize("content", list(_BROKEN_FILES), ids=list(_BROKEN_FILES))
def test_a_broken_bot_file_is_reported_and_the_other_bots_still_work(
    config: Config, server: FakeOpenAI, home: Path, content: str
) -> None:
    text, problem = _BROKEN_FILES[content]
    broken = _bot_file(home, "bad", "")
    broken.write_bytes(text)
    _bot_file(home, "pirate", "name: Pirate\nsystem_prompt: Talk like a pirate.\n")
    with Client(config) as client:
        assert client.ask("hi").text == "You said: hi"  # the default bot
        client.ask("ahoy", bot="pirate")
        assert server.requests[-1]["messages"][0]["content"] == "Talk like a pirate."
        asked = len(server.requests)
        with pytest.raises(ConfigError, match=f"{broken}.*{problem}") as caught:
            client.ask("hi", bot="bad")
        assert "\n" not in str(caught.value)
        assert len(server.requests) == asked
        assert [b.slug for b in client.bots.list()] == ["default", "pirate"]
        health = client.health()
    assert health.ok  # a broken bot fails only the asks that use it
    [reported] = health.broken_bots
    assert reported.name == "bad"
    assert not reported.ok
    assert str(broken) in reported.detail


def test_health_fails_when_the_default_bot_is_broken(server: FakeOpenAI, home: Path) -> None:
    _bot_file(home, "mine", "- not a bot\n")
    with Client(make_config(server, bot="mine")) as client:
        assert not client.health().ok
        with pytest.raises(ConfigError, match=r"mine\.yaml"):
            client.ask("hi")


async def test_bots_work_sync_and_async_alike(config: Config) -> None:
    with Client(config) as client:
        made = client.bots.create(Bot(uid="u-1", slug="sync-bot", name="Sync Bot"))
        assert client.bots.get(slug="sync-bot") == made
    async with AsyncClient(config) as client:
        assert await client.bots.get(uid="u-1") == made
