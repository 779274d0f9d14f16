"""Workflows: a list of steps in YAML, run by chinwag itself.

    description: Outline, then expand each point
    args: {topic: null, points: 3}       # null: required
    steps:
      - name: outline
        prompt: "List {{ args.points }} points about {{ args.topic }}, one per line."
      - name: expand
        loop: "{{ steps.outline }}"      # a list, or text split into its non-empty lines
        when: "{{ args.points > 0 }}"    # skipped when false
        template: summarize              # or prompt:
        variables: {text: "{{ item }}"}
        bot: default

Runs are bounded: a loop over more than `workflows.max_iterations` items, or a run past
`workflows.max_turns` turns, is refused before its first turn is sent; every expression
renders within the `templates.*` bounds.

Why not Ansible, as LLM Workflow Engine did: its users broke whenever Ansible changed
(LWE issues #353 and #354), and what a chat workflow needs is small: a sequence of
prompts with inputs, loops and conditions. chinwag runs that itself, versioned with it,
and evaluates every expression in Jinja2's sandbox, the same as templates.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Iterable, Mapping
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from chinwag import checks
from chinwag.errors import InputError, NotFoundError
from chinwag.templates import MAX_YAML, check_name, read_file, turn_options, variables_of_call

if TYPE_CHECKING:
    from chinwag.backend import Backend, Renamer
    from chinwag.config import Settings
    from chinwag.templates import Rendered, Templates
    from chinwag.types import Reply


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    prompt: str | None = None
    template: str | None = None
    variables: dict[str, Any] = {}
    bot: str | None = None
    system: str | None = None
    loop: str | None = None  # an expression giving a list; each item is `item`
    when: str | None = None  # an expression; the step is skipped when false

    @model_validator(mode="after")
    def _one_source(self) -> Step:
        if (self.prompt is None) == (self.template is None):
            raise ValueError("a step needs either prompt: or template:")
        return self


class Workflow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str
    description: str = ""
    args: dict[str, Any] = {}  # defaults; None marks a required argument
    steps: list[Step] = Field(min_length=1)
    source: str


class StepResult(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: str
    skipped: bool = False
    outputs: list[str] = []  # one per loop item, or one
    conversations: list[str] = []


class WorkflowResult(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: str
    steps: list[StepResult]

    def output(self, step: str) -> str | list[str]:
        found = next(s for s in self.steps if s.name == step)
        return found.outputs[0] if len(found.outputs) == 1 else found.outputs


def parse(name: str, text: str, source: str) -> Workflow:
    import yaml

    from chinwag.sandbox import check_expansion

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"Workflow {name!r} ({source}): bad YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"Workflow {name!r} ({source}) must be a mapping with steps:.")
    check_expansion(data, f"Workflow {name!r} ({source})", MAX_YAML)
    try:
        workflow = Workflow.model_validate({**data, "name": name, "source": source})
    except ValidationError as exc:
        raise InputError(f"Workflow {name!r} ({source}): {checks.problem(exc)}") from None
    names = [s.name for s in workflow.steps]
    if len(set(names)) != len(names):
        raise InputError(f"Workflow {name!r} ({source}): step names must differ.")
    return workflow


class WorkflowLibrary:
    """Workflows in `<config dir>/workflows/NAME.yaml`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.yaml")) if self.folder.is_dir() else []

    def get(self, name: str) -> Workflow:
        path = self.folder / f"{check_name(name, 'workflow')}.yaml"
        if not path.is_file():
            known = ", ".join(self.names()) or "none yet"
            raise NotFoundError(f"No workflow {name!r} in {self.folder} (workflows: {known}).")
        return parse(name, read_file(path, "Workflow"), str(path))


class _Expressions:
    """A run's expressions and texts, each evaluated in the bounded sandbox."""

    def __init__(self, settings: Settings | None) -> None:
        self.limits = settings.templates if settings is not None else None

    def evaluate(self, expression: str, scope: dict[str, Any], at_most: int | None = None) -> Any:
        """A `{{ ... }}` expression's value (not its text); with `at_most`, a loop's items."""
        from chinwag.sandbox import Sandbox, refusals

        inner = expression.strip()
        if inner.startswith("{{") and inner.endswith("}}"):
            inner = inner[2:-2]
        with refusals(f"Workflow expression {expression[:60]!r}"):
            value = Sandbox(self.limits).evaluate(inner, scope)
            # Read lazy values (map, select) here, where their errors are reported.
            return value if at_most is None else _items(value, at_most)

    def fill(self, text: str, scope: dict[str, Any]) -> str:
        from chinwag.sandbox import Sandbox, refusals

        with refusals(f"Workflow text {text[:60]!r}"):
            return Sandbox(self.limits).render(text, scope)


def _items(value: Any, at_most: int) -> list[Any]:
    """A loop's items, reading no more than `at_most` + 1 of them."""
    if isinstance(value, str):
        lines = (line.strip() for line in value.splitlines())
        return list(islice((line for line in lines if line), at_most + 1))
    if isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        return list(islice(value, at_most + 1))
    raise InputError(f"A loop needs a list or lines of text, not {type(value).__name__}.")


Ask = Callable[[str, str, dict[str, Any]], Awaitable["Reply"]]  # (step, prompt, options)
Progress = Callable[[str, str], None]  # (step name, what happened)


async def run(
    workflow: Workflow,
    args: dict[str, Any],
    ask: Ask,
    render_template: Callable[[str, dict[str, Any]], Rendered],
    progress: Progress | None = None,
    settings: Settings | None = None,
) -> WorkflowResult:
    """Run the steps in order; `ask(step, prompt, options)` sends one stored turn.

    `settings` bounds the run (workflows.*) and its expressions (templates.*).
    """
    from chinwag.config import WorkflowSettings

    bounds = settings.workflows if settings is not None else WorkflowSettings()
    expressions = _Expressions(settings)
    unknown = sorted(set(args) - set(workflow.args))
    if unknown:
        raise InputError(
            f"Workflow {workflow.name!r} takes no argument {', '.join(unknown)} "
            f"(its arguments: {', '.join(workflow.args) or 'none'})."
        )
    given = {**workflow.args, **args}
    missing = sorted(k for k, v in given.items() if v is None)
    if missing:
        raise InputError(
            f"Workflow {workflow.name!r} needs: {', '.join(missing)} (pass -a {missing[0]}=...)."
        )
    outputs: dict[str, Any] = {}
    results: list[StepResult] = []
    turns = 0
    for step in workflow.steps:
        scope = {"args": given, "steps": outputs}
        if step.when is not None and not expressions.evaluate(step.when, scope):
            results.append(StepResult(name=step.name, skipped=True))
            if progress:
                progress(step.name, "skipped")
            continue
        items: list[Any] = [None]
        if step.loop is not None:
            items = expressions.evaluate(step.loop, scope, bounds.max_iterations)
            if len(items) > bounds.max_iterations:
                raise InputError(
                    f"Workflow {workflow.name!r}, step {step.name!r}: its loop has more than "
                    f"{bounds.max_iterations} items (workflows.max_iterations). Shorten the "
                    f"list, or raise the setting."
                )
        if turns + len(items) > bounds.max_turns:
            raise InputError(
                f"Workflow {workflow.name!r}, step {step.name!r} would take the run past "
                f"{bounds.max_turns} turns (workflows.max_turns). Shorten its loops, or raise "
                f"the setting."
            )
        turns += len(items)
        result = StepResult(name=step.name)
        for n, item in enumerate(items, 1):
            local = {**scope, "item": item, "index": n}
            rendered = None
            if step.template is not None:
                variables = {k: expressions.fill(v, local) if isinstance(v, str) else v
                             for k, v in step.variables.items()}  # fmt: skip
                rendered = render_template(step.template, variables)
                prompt = rendered.prompt
            else:
                assert step.prompt is not None
                prompt = expressions.fill(step.prompt, local)
            system = expressions.fill(step.system, local) if step.system is not None else None
            options = turn_options(rendered, {"bot": step.bot, "system": system})
            if progress:
                where = f" {n}/{len(items)}" if step.loop is not None else ""
                progress(step.name, f"running{where}")
            reply = await ask(step.name, prompt, options)
            result.outputs.append(reply.text)
            result.conversations.append(reply.conversation_id)
        outputs[step.name] = result.outputs if step.loop is not None else result.outputs[0]
        results.append(result)
        if progress:
            progress(step.name, "done")
    return WorkflowResult(name=workflow.name, steps=results)


class Workflows:
    """Workflows: YAML lists of steps in `<config dir>/workflows/`, run by chinwag
    (`client.workflows`)."""

    def __init__(self, backend: Backend, templates: Templates, conversations: Renamer) -> None:
        self._backend = backend
        self.library = WorkflowLibrary(backend.config.paths.config_dir / "workflows")
        self._templates = templates
        self._conversations = conversations

    async def list(self) -> builtins.list[str]:
        return self.library.names()

    async def get(self, name: str) -> Workflow:
        return self.library.get(name)

    async def run(
        self,
        name: str,
        args: Mapping[str, Any] | None = None,
        /,
        *,
        user: str | int | None = None,
        on_step: Progress | None = None,
        **more: Any,
    ) -> WorkflowResult:
        """Run a workflow with its arguments (a mapping, keyword arguments, or both); each
        step's turn is stored as a conversation titled '<workflow> / <step>', for `user`.
        `on_step(step, what)` hears of each step as it starts, is skipped and ends."""
        from chinwag.streams import complete

        workflow = self.library.get(name)
        checks.user(user)

        async def ask(step: str, prompt: str, options: dict[str, Any]) -> Reply:
            turn = self._backend.turn(prompt, stream=False, user=user, **options)
            reply = await complete(turn)
            title = f"{workflow.name} / {step}"
            await self._conversations.rename(reply.conversation_id, title, user=user)
            return reply

        return await run(
            workflow,
            variables_of_call(name, args, more),
            ask,
            self._templates.library.render,
            on_step,
            self._backend.config.settings,
        )
