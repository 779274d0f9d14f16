"""Workflows: steps, inputs from arguments and earlier steps, loops, conditions, storage."""

from __future__ import annotations

from pathlib import Path

import pytest

from chinwag import AsyncClient, Client, Config
from chinwag.errors import InputError, NotFoundError
from tests.conftest import Runner
from tests.fake_openai import FakeOpenAI, Script

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
            "outline", topic="tea", _progress=lambda step, what: progress.append((step, what))
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
