"""Workflows: steps, inputs from arguments and earlier steps, loops, conditions, storage."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest

from chinwag import AsyncClient, Client, Config
from chinwag.errors import InputError, NotFoundError
from tests.conftest import Runner, make_config
from tests.fake_openai import FakeOpenAI, Script
from tests.test_templates import alias_bomb

OUTLINE = """
description: Outline a topic, then expand each point
args: {topic: null, points: 2, deep: false}
steps:
  - name: outline
    prompt: "List {{ args.points }} points about {{ args.topic }}."
  - name: expand
    loop: "{{ steps.outline }}"
    template: explain
    variables: {point: "{{ item }}"}
  - name: deeper
    when: "{{ args.deep }}"
    prompt: "Go deeper."
  - name: wrap_up
    prompt: "Conclude: {{ steps.expand | join(' / ') }}"
    system: "You conclude {{ args.topic }} essays."
"""


def _write(home: Path, name: str, text: str) -> None:
    (home / "workflows").mkdir(parents=True, exist_ok=True)
    (home / "workflows" / f"{name}.yaml").write_text(text)


@pytest.mark.anyio
async def test_a_workflow_runs_its_steps_and_stores_each(
    config: Config, server: FakeOpenAI, home: Path
) -> None:
    _write(home, "outline", OUTLINE)
    server.script(Script(text="first point\nsecond point"))
    progress: list[tuple[str, str]] = []
    async with AsyncClient(config) as client:
        await client.templates.save("explain", "---\nsystem: Be clear.\n---\nExplain {{ point }}")
        result = await client.workflows.run(
            "outline", topic="tea", on_step=lambda step, what: progress.append((step, what))
        )
        conversations = await client.conversations.list()
    sent = [r["messages"][-1]["content"] for r in server.requests]
    assert sent == [
        "List 2 points about tea.",
        "Explain first point",
        "Explain second point",
        "Conclude: You said: Explain first point / You said: Explain second point",
    ]
    assert server.requests[1]["messages"][0]["content"] == "Be clear."  # the template's
    assert server.requests[-1]["messages"][0]["content"] == "You conclude tea essays."
    assert result.output("expand") == [
        "You said: Explain first point",
        "You said: Explain second point",
    ]
    assert [s.skipped for s in result.steps] == [False, False, True, False]
    assert ("deeper", "skipped") in progress
    assert ("expand", "running 2/2") in progress
    titles = sorted(c.title or "" for c in conversations)
    assert titles == [
        "outline / expand",
        "outline / expand",
        "outline / outline",
        "outline / wrap_up",
    ]


def test_arguments_and_definitions_are_checked(config: Config, home: Path) -> None:
    _write(home, "outline", OUTLINE)
    _write(home, "broken", "steps:\n  - name: x\n")
    _write(home, "twice", "steps:\n  - {name: a, prompt: x}\n  - {name: a, prompt: y}\n")
    _write(home, "evil", 'steps:\n  - {name: a, prompt: "{{ args.__class__.__mro__ }}"}\n')
    with Client(config) as client:
        with pytest.raises(InputError, match="needs: topic"):
            client.workflows.run("outline")
        with pytest.raises(InputError, match="takes no argument colour"):
            client.workflows.run("outline", topic="t", colour="red")
        with pytest.raises(InputError, match="either prompt: or template:"):
            client.workflows.run("broken")
        with pytest.raises(InputError, match="step names must differ"):
            client.workflows.get("twice")
        with pytest.raises(InputError):
            client.workflows.run("evil")
        with pytest.raises(NotFoundError, match="workflows: broken, evil, outline, twice"):
            client.workflows.get("missing")
        assert client.workflows.list() == ["broken", "evil", "outline", "twice"]


def test_workflow_commands(run: Runner, server: FakeOpenAI, home: Path) -> None:
    _write(home, "hello", "description: Greets\nargs: {name: null}\nsteps:\n"
                         "  - {name: greet, prompt: 'Hello {{ args.name }}'}\n")  # fmt: skip
    assert "hello" in run("workflow", "list").stdout
    out = run("workflow", "run", "hello", "-a", "name=Ada")
    assert out.returncode == 0
    assert out.stdout == "## greet\n\nYou said: Hello Ada\n\n"
    assert "[greet] running" in out.stderr
    assert "[greet] done" in out.stderr
    assert "args: {name: null}" in run("workflow", "show", "hello").stdout


# -- bounds: no loop without an end (issue 9, point 2) ---------------------------------------

EXPAND = """
steps:
  - {name: outline, prompt: "List points."}
  - name: expand
    loop: "{{ steps.outline }}"
    prompt: "Expand {{ item }}"
"""


@pytest.mark.anyio
async def test_a_loop_over_model_output_stops_at_max_iterations_before_any_turn(
    server: FakeOpenAI, home: Path
) -> None:
    _write(home, "expand", EXPAND)
    server.script(Script(text="\n".join(f"point {n}" for n in range(300))))
    with anyio.fail_after(60):
        async with AsyncClient(make_config(server)) as client:
            with pytest.raises(InputError) as caught:
                await client.workflows.run("expand")
    assert str(caught.value) == (
        "Workflow 'expand', step 'expand': its loop has more than 100 items "
        "(workflows.max_iterations). Shorten the list, or raise the setting."
    )
    assert len(server.requests) == 1  # the outline only: not one turn of the loop


@pytest.mark.anyio
async def test_iterations_and_turns_follow_the_settings(server: FakeOpenAI, home: Path) -> None:
    _write(home, "expand", EXPAND)
    three = Script(text="one\ntwo\nthree")
    server.script(three)
    async with AsyncClient(make_config(server, **{"workflows.max_iterations": 2})) as client:
        with pytest.raises(InputError, match=r"more than 2 items \(workflows\.max_iterations\)"):
            await client.workflows.run("expand")
    server.script(three)
    async with AsyncClient(make_config(server, **{"workflows.max_iterations": 3})) as client:
        assert len((await client.workflows.run("expand")).output("expand")) == 3
    assert len(server.requests) == 1 + 1 + 3
    server.requests.clear()
    server.script(three)
    async with AsyncClient(make_config(server, **{"workflows.max_turns": 3})) as client:
        with pytest.raises(InputError) as caught:
            await client.workflows.run("expand")
    assert str(caught.value) == (
        "Workflow 'expand', step 'expand' would take the run past 3 turns "
        "(workflows.max_turns). Shorten its loops, or raise the setting."
    )
    assert len(server.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("loop", "refusal"),
    [
        ("{{ range(100000) }}", "asks for a range of more than 10000 numbers"),
        ("{{ range(5000) }}", "more than 100 items (workflows.max_iterations)"),
        ("{{ range(3) | map('string') }}", None),  # any list-like value, read lazily
    ],
)
async def test_a_loop_over_a_range(
    server: FakeOpenAI, home: Path, loop: str, refusal: str | None
) -> None:
    step = f'{{name: n, loop: "{loop}", prompt: "Say {{{{ item }}}}"}}'
    _write(home, "count", f"steps:\n  - {step}\n")
    with anyio.fail_after(60):
        async with AsyncClient(make_config(server)) as client:
            if refusal is None:
                result = await client.workflows.run("count")
                assert result.output("n") == [f"You said: Say {n}" for n in range(3)]
                return
            with pytest.raises(InputError, match=re.escape(refusal)):
                await client.workflows.run("count")
    assert server.requests == []


def test_workflow_names_and_files(config: Config, home: Path, run: Runner) -> None:
    _write(home, "outline", OUTLINE)
    bad = home / "workflows" / "latin.yaml"
    bad.write_bytes("description: café\nsteps: []\n".encode("latin-1"))
    message = f"Workflow {bad} is not UTF-8 text (byte 0xe9 on line 1): save it as UTF-8."
    with Client(config) as client:
        with pytest.raises(InputError, match="Invalid workflow name"):
            client.workflows.get("outline\n")
        with pytest.raises(InputError) as caught:
            client.workflows.get("latin")
        assert str(caught.value) == message
    out = run("workflow", "show", "latin")
    assert (out.returncode, out.stderr) == (1, f"chinwag: {message}\n")


def test_a_yaml_alias_bomb_in_a_workflow_is_refused(config: Config, home: Path) -> None:
    _write(home, "bomb", alias_bomb("args") + "steps:\n  - {name: s, prompt: '{{ args.i }}'}\n")
    with Client(config) as client, pytest.raises(InputError, match="expands to more than"):
        client.workflows.get("bomb")
