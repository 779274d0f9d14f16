"""Templates: front matter, a sandboxed Jinja2 body, files and built-ins, API, CLI, shell."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from chinwag import AsyncClient, Client, Config
from chinwag.cli.shell import Shell
from chinwag.errors import InputError, NotFoundError
from tests.conftest import Runner
from tests.fake_openai import FakeOpenAI

HAIKU = """---
description: A haiku on any topic
bot: poet
system: You write haiku about {{ topic }}.
title: Haiku about {{ topic }}
parameters: {temperature: 0.9, max_tokens: 40}
variables: {topic: tea}
---
Write a haiku about {{ topic }}{% if mood %} in a {{ mood }} mood{% endif %}.
"""


@pytest.mark.anyio
async def test_a_template_file_runs_as_a_turn(config: Config, server: FakeOpenAI) -> None:
    async with AsyncClient(config) as client:
        await client.bots.create(name="Poet", model="other-model")
        await client.templates.save("haiku", HAIKU)
        reply = await client.templates.run("haiku", {"topic": "rain", "mood": "calm"})
        request = server.requests[-1]
        conversation = await client.conversations.get(reply.conversation_id)
    assert request["messages"][-1]["content"] == "Write a haiku about rain in a calm mood.\n"
    assert request["messages"][0]["content"] == "You write haiku about rain."
    assert (request["model"], request["temperature"], request["max_tokens"]) == (
        "other-model",
        0.9,
        40,
    )
    assert conversation.title == "Haiku about rain"


@pytest.mark.anyio
async def test_defaults_missing_variables_and_overrides(config: Config, home: Path) -> None:
    async with AsyncClient(config) as client:
        await client.templates.save("haiku", HAIKU)
        rendered = await client.templates.render("haiku", mood="")
        assert rendered.prompt == "Write a haiku about tea.\n"  # the default topic
        with pytest.raises(InputError, match="needs a value for: text"):
            await client.templates.render("summarize")
        assert "summarize" in [t.name for t in await client.templates.list()]
        # A file of the same name replaces the built-in.
        await client.templates.save("summarize", "Shorten: {{ text }}")
        assert (await client.templates.render("summarize", text="x")).prompt == "Shorten: x"
        with pytest.raises(NotFoundError, match=r"Templates: .*haiku"):
            await client.templates.get("nope")
    assert (home / "templates" / "haiku.md").read_text() == HAIKU


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ self.__init__.__globals__ }}",
        "{{ x.__class__.__base__.__subclasses__() }}",
        "{{ '{0.__class__.__mro__}'.format(x) }}",
        "{{ x.append(1) }}{{ x }}",
        "{% set n = namespace() %}{{ n.__dict__ }}",
        "{{ range.__self__ }}",
    ],
)
def test_known_sandbox_escapes_fail(config: Config, body: str) -> None:
    with Client(config) as client:
        client.templates.save("evil", body)
        with pytest.raises(InputError) as caught:
            client.templates.render("evil", x=["data"])
    assert "uid=" not in str(caught.value)
    assert "subprocess" not in str(caught.value)


def test_bad_templates_are_refused_before_saving(config: Config, home: Path) -> None:
    with Client(config) as client:
        with pytest.raises(InputError, match="line 1"):
            client.templates.save("broken", "{% if %}")
        with pytest.raises(InputError, match="front matter"):
            client.templates.save("broken", "---\n[unclosed\n---\nbody")
        with pytest.raises(InputError, match=r"parameters\.temperature"):
            client.templates.save("broken", "---\nparameters: {temperature: hot}\n---\nx")
        with pytest.raises(InputError, match="Invalid template name"):
            client.templates.save("../../outside", "x")
    assert not (home / "templates" / "broken.md").exists()
    assert not (home.parent / "outside.md").exists()


def test_template_commands(run: Runner, server: FakeOpenAI, home: Path) -> None:
    (home / "templates").mkdir(parents=True)
    (home / "templates" / "greet.md").write_text("---\ndescription: Greets\n---\nHello {{ name }}")
    listed = run("template", "list").stdout
    assert "greet" in listed
    assert "summarize" in listed
    assert run("template", "show", "greet").stdout.endswith("Hello {{ name }}")
    out = run("template", "run", "greet", "-v", "name=Ada")
    assert out.stdout == "You said: Hello Ada\n"
    missing = run("template", "run", "greet")
    assert missing.returncode == 1
    assert "needs a value for: name" in missing.stderr


def test_template_in_the_shell(config: Config, server: FakeOpenAI) -> None:
    with Client(config) as client:
        client.templates.save("greet", "---\nsystem: Be warm.\n---\nHello {{ name }}")
        out = io.StringIO()
        with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
            pipe.send_text('/template greet name="Ada Lovelace"\r/template\r/exit\r')
            Shell(client, input=pipe, output=DummyOutput(), out=out, markdown=False).run()
    assert "You said: Hello Ada Lovelace" in out.getvalue()
    assert server.requests[-1]["messages"][0]["content"] == "Be warm."
    assert "greet" in out.getvalue()


def test_template_edit_copies_a_built_in_then_checks_it(
    run: Runner,
    home: Path,
    tmp_path: Path,
) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\necho "Also: {{ extra }}" >> "$1"\n')
    editor.chmod(0o755)
    run.env["EDITOR"] = str(editor)
    out = run("template", "edit", "summarize")
    assert out.returncode == 0
    saved = (home / "templates" / "summarize.md").read_text()
    assert saved.startswith("---\ndescription: Summarize a text")
    assert saved.endswith("Also: {{ extra }}\n")
    editor.write_text('#!/bin/sh\necho "{% if %}" >> "$1"\n')
    broken = run("template", "edit", "summarize")
    assert broken.returncode == 1
    assert "summarize" in broken.stderr
