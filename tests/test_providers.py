"""The provider registry: built-ins and the default's choice (plugins: test_plugins.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from chinwag import AsyncClient, Bot, Config, GenerationParams
from chinwag.errors import ConfigError
from chinwag.providers import choose_default, create_provider
from tests.conftest import make_config
from tests.fake_openai import FakeOpenAI


def test_an_unknown_provider_type_lists_the_known_ones() -> None:
    config = Config({"providers.x.type": "nonesuch"})
    with pytest.raises(ConfigError, match=r"Unknown provider type 'nonesuch' \(known: .*openai"):
        create_provider(config, "x")
    with pytest.raises(ConfigError, match="No provider named 'y'"):
        create_provider(config, "y")


def test_the_default_provider_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_default(Config({"provider": "openai"})) == ("openai", "set in config (provider)")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert choose_default(Config()) == ("openai", "OPENAI_API_KEY is set")


@pytest.mark.anyio
async def test_a_bot_object_sets_model_prompt_and_params(server: FakeOpenAI) -> None:
    bot = Bot(
        uid="b-1",
        slug="poet",
        name="Poet",
        model="other-model",
        system_prompt="You rhyme.",
        params=GenerationParams(temperature=1.5, max_tokens=30),
    )
    async with AsyncClient(make_config(server)) as client:
        reply = await client.ask("hi", bot=bot, temperature=0.5)
        conversation = await client.conversations.get(reply.conversation_id)
    request = server.requests[-1]
    assert request["model"] == "other-model"
    assert request["messages"][0] == {"role": "system", "content": "You rhyme."}
    assert (request["temperature"], request["max_tokens"]) == (0.5, 30)  # the call wins
    assert conversation.bot == "b-1"


def test_main_job_command_streams_an_answer(server: FakeOpenAI, home: Path) -> None:
    import os
    import subprocess

    env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "CHINWAG_MODEL": "test-model"}
    out = subprocess.run(
        [sys.executable, "-m", "chinwag", "Say", "hello"],
        input="and this came from a pipe",
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "You said: Say hello\n\nand this came from a pipe\n"
    env["OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"
    env["CHINWAG_PROVIDERS__OPENAI__MAX_RETRIES"] = "0"
    failed = subprocess.run(
        [sys.executable, "-m", "chinwag", "hi"], capture_output=True, text=True, env=env,
        timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert failed.returncode == 1
    assert failed.stderr.startswith("chinwag: Could not connect")
    assert "Traceback" not in failed.stderr
