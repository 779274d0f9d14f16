"""Templates: front matter, a sandboxed Jinja2 body, files and built-ins, API, CLI, shell."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from chinwag import AsyncClient, Client, Config
from chinwag.cli.shell import Shell
from chinwag.errors import InputError, NotFoundError
from tests.conftest import Runner, make_config
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


# -- runaways: every render is bounded in time and size (issue 9, point 2) ----------------

# Renders in a child process, so that a runaway (a C-level `9**(9**9)` holds the GIL) can
# be stopped by the timeout, and an address-space limit keeps one from taking the machine.
_CHILD = """
import json, sys
try:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
except (ImportError, ValueError, OSError):
    pass
import chinwag
body, settings, kind = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
with chinwag.Client(settings) as client:
    try:
        if kind == "template":
            client.templates.save("runaway", body)
            client.templates.render("runaway")
        else:
            folder = client.config.paths.config_dir / "workflows"
            folder.mkdir(parents=True, exist_ok=True)
            step = {"name": "a", "prompt": body}
            (folder / "runaway.yaml").write_text(json.dumps({"steps": [step]}))
            client.workflows.run("runaway")
    except chinwag.ChinwagError as exc:
        print(type(exc).__name__, exc)
    else:
        print("rendered")
"""


def _render_in_child(
    body: str, kind: str = "template", settings: dict[str, Any] | None = None
) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, body, json.dumps(settings or {}), kind],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def alias_bomb(key: str) -> str:
    """YAML for a mapping `key:` whose aliases expand to 9**9 (387 million) strings."""
    lines = [f"{key}:", "  a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  {b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in pairwise("abcdefghi")]
    return "\n".join(lines) + "\n"


ALIAS_BOMB = f"---\n{alias_bomb('variables')}---\n{{{{ i }}}}\n"


@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        ("{{ 9**(9**9) }}", "computes a number of more than"),
        ("{{ 'a'*10**10 }}", "templates.max_output"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "range of more than",
        ),
        (
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
            "loop steps",
        ),
        ("{% set a = [[[1]*1000]*1000]*1000 %}{{ a }}", "templates.max_output"),
        ("{{ '%1000000000s' % 'a' }}", "templates.max_output"),
        ("{{ 'a'|center(10**10) }}", "templates.max_output"),
        (ALIAS_BOMB, "the front matter expands to more than"),
    ],
    ids=["power", "repeat", "range", "nested-loops", "nested-lists", "width", "center", "bomb"],
)
def test_runaway_templates_are_refused(body: str, refusal: str) -> None:
    said = _render_in_child(body)
    assert said.startswith("InputError Template 'runaway'"), said
    assert refusal in said


def test_a_slow_template_stops_at_the_configured_timeout() -> None:
    # Each macro call doubles: 2**40 calls, none of them a loop step or a piece of output.
    body = "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    said = _render_in_child(body, settings={"templates.timeout": 0.3})
    assert said == "InputError Template 'runaway' takes longer than 0.3 s to render " + (
        "(templates.timeout)."
    )


def test_workflow_expressions_are_bounded_as_templates() -> None:
    said = _render_in_child("{{ 9**(9**9) }}", kind="workflow")
    assert said.startswith("InputError Workflow text '{{ 9**(9**9) }}' computes a number"), said


def test_output_size_is_capped_by_the_setting(server: FakeOpenAI) -> None:
    big = "{% for i in range(5000) %}{{ 'x' * 1000 }}{% endfor %}"  # 5 MB
    with Client(make_config(server)) as client:
        client.templates.save("big", big)
        client.templates.save("small", "{{ 'x' * 200 }}")
        with pytest.raises(InputError, match=r"Template 'big' .*templates\.max_output"):
            client.templates.render("big")
        assert len(client.templates.render("small").prompt) == 200
    with Client(make_config(server, **{"templates.max_output": 100})) as client:
        with pytest.raises(InputError, match=r"more than 100 \(templates\.max_output\)"):
            client.templates.render("small")
        with pytest.raises(InputError, match=r"templates\.max_output"):
            client.templates.run("small")
    assert server.requests == []  # nothing refused was sent


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("{{ 1/0 }}", "failed to render: ZeroDivisionError: division by zero"),
        ("{{ 'a' + 1 }}", "failed to render: TypeError"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "nests too deeply"),
    ],
)
def test_errors_inside_a_template_are_input_errors(config: Config, body: str, said: str) -> None:
    with Client(config) as client:
        client.templates.save("oops", body)
        with pytest.raises(InputError, match=re.escape(said)):
            client.templates.render("oops")


def test_ordinary_jinja_still_works(config: Config) -> None:
    body = (
        "{% for x in items %}{{ loop.index }}. {{ x|upper }}{{ ', ' if not loop.last }}"
        "{% endfor %} | {{ 'a' ~ 'b' }} | {{ '%3d' % 7 }} | {{ '{:>3}'.format('y') }} | "
        "{{ items|join('/') }} | {{ {'k': [1, 2]}|tojson }} | {{ 2**10 }} | "
        "{{ items|sort|first }} | {{ 'b' in items }} | {{ range(3)|sum }}"
    )
    with Client(config) as client:
        client.templates.save("ok", body)
        prompt = client.templates.render("ok", items=["b", "a"]).prompt
    assert prompt == '1. B, 2. A | ab |   7 |   y | b/a | {"k": [1, 2]} | 1024 | a | True | 3'


# -- names and files ------------------------------------------------------------------------


def test_template_names_are_matched_whole(config: Config, home: Path) -> None:
    with Client(config) as client:
        with pytest.raises(InputError, match="Invalid template name"):
            client.templates.save("haiku\n", "x")
        with pytest.raises(InputError, match="Invalid template name"):
            client.templates.get("summarize\n")
    assert not (home / "templates").exists() or list((home / "templates").iterdir()) == []


def test_template_edit_refuses_a_name_outside_the_folder(
    run: Runner, home: Path, tmp_path: Path
) -> None:
    (home / "templates").mkdir(parents=True)
    outside = home / "x.md"  # what templates/../x.md names
    outside.write_text("mine\n")
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\necho "edited" >> "$1"\n')
    editor.chmod(0o755)
    run.env["EDITOR"] = str(editor)
    out = run("template", "edit", "../x")
    assert out.returncode == 1
    assert out.stderr == (
        "chinwag: Invalid template name '../x': use up to 100 letters, digits, '-', '_' and '.'.\n"
    )
    assert outside.read_text() == "mine\n"


def test_a_template_file_that_is_not_utf8_is_one_clear_error(
    config: Config, home: Path, run: Runner
) -> None:
    (home / "templates").mkdir(parents=True)
    bad = home / "templates" / "latin.md"
    bad.write_bytes("---\ndescription: café\n---\nHello".encode("latin-1"))
    message = f"Template {bad} is not UTF-8 text (byte 0xe9 on line 2): save it as UTF-8."
    with Client(config) as client:
        with pytest.raises(InputError) as caught:
            client.templates.get("latin")
        assert str(caught.value) == message
        with pytest.raises(InputError, match="not UTF-8 text"):
            client.templates.list()
        with pytest.raises(InputError, match="cannot be saved as UTF-8"):
            client.templates.save("lone", "\ud800")
    for command in (["template", "show", "latin"], ["template", "run", "latin"]):
        out = run(*command)
        assert (out.returncode, out.stderr) == (1, f"chinwag: {message}\n")
