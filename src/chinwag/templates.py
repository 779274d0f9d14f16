"""Templates, as in LLM Workflow Engine: Markdown with YAML front matter and a Jinja2 body.

    ---
    description: A haiku on any topic
    bot: poet                      # optional: who answers
    system: You write haiku.       # optional: the turn's system prompt
    title: Haiku about {{ topic }} # optional: the conversation's title
    parameters: {temperature: 0.9} # optional: sampling settings
    variables: {topic: tea}        # defaults
    ---
    Write a haiku about {{ topic }}.

They live in `<config dir>/templates/NAME.md`, beside the built-in ones. Bodies render
in Jinja2's immutable sandbox: no attribute starting with an underscore, no mutation,
no unsafe format strings, so a template cannot reach Python's internals; and within
bounds of time and size (chinwag.sandbox), so none can hang or fill memory.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chinwag import checks
from chinwag.errors import InputError, NotFoundError
from chinwag.types import GenerationParams, Reply

if TYPE_CHECKING:
    from chinwag.backend import Backend, Renamer
    from chinwag.config import Config, TemplateSettings
    from chinwag.plan import TurnOptions

BUILTIN: dict[str, str] = {
    "summarize": """---
description: Summarize a text in a few sentences
variables: {sentences: 3}
---
Summarize the following text in at most {{ sentences }} sentences.

{{ text }}
""",
    "translate": """---
description: Translate a text into another language
title: Translation into {{ language }}
variables: {language: English}
---
Translate the following text into {{ language }}. Reply with the translation only.

{{ text }}
""",
    "explain-code": """---
description: Explain what a piece of code does
system: You are a patient senior engineer who explains code clearly.
---
Explain what this code does, step by step{% if language %}; it is {{ language }}{% endif %}.

```
{{ code }}
```
""",
}

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # template and workflow names


def check_name(name: Any, what: str) -> str:
    """A template's or workflow's name: it must name a file inside its folder."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InputError(
            f"Invalid {what} name {name!r:.60}: use up to 100 letters, digits, '-', '_' and '.'."
        )
    return name


MAX_YAML = 1_000_000  # characters a template's front matter or a workflow may expand to
_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n?(.*)\Z", re.DOTALL)


class Template(BaseModel):
    """A parsed template: its front matter and its Jinja2 body."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str
    description: str = ""
    bot: str | None = None
    system: str | None = None
    title: str | None = None
    parameters: GenerationParams = Field(default_factory=GenerationParams)
    variables: dict[str, Any] = Field(default_factory=dict)  # defaults
    body: str
    source: str  # "built-in" or the file's path


class Rendered(BaseModel):
    """A template filled in: what a turn sends."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    name: str
    prompt: str
    system: str | None
    title: str | None
    bot: str | None
    parameters: GenerationParams


def read_file(path: Path, what: str) -> str:
    """A template or workflow file's text; one clear error when it is not UTF-8."""
    from chinwag.checks import utf8

    return utf8(path.read_bytes(), f"{what} {path}")


def parse(name: str, text: str, source: str) -> Template:
    """A Template from its file's text; errors say what is wrong and where."""
    import yaml
    from jinja2 import TemplateSyntaxError

    from chinwag.sandbox import Sandbox, check_expansion

    meta: dict[str, Any] = {}
    body = text
    match = _FRONT.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1)) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"Template {name!r} ({source}): bad front matter: {exc}") from None
        if not isinstance(loaded, dict):
            raise InputError(f"Template {name!r} ({source}): the front matter must be a mapping.")
        check_expansion(loaded, f"Template {name!r} ({source}): the front matter", MAX_YAML)
        meta, body = loaded, match.group(2)
    try:
        template = Template.model_validate({**meta, "name": name, "body": body, "source": source})
    except ValidationError as exc:
        raise InputError(f"Template {name!r} ({source}): {checks.problem(exc)}") from None
    env = Sandbox()
    for part in (template.body, template.system, template.title):
        if part:
            try:
                env.parse(part)
            except TemplateSyntaxError as exc:
                raise InputError(
                    f"Template {name!r} ({source}), line {exc.lineno}: {exc.message}."
                ) from None
    return template


def variables_of(template: Template) -> set[str]:
    """Every variable the template's body, system prompt and title use."""
    from jinja2 import meta

    from chinwag.sandbox import Sandbox

    env = Sandbox()
    found: set[str] = set()
    for part in (template.body, template.system, template.title):
        if part:
            found |= meta.find_undeclared_variables(env.parse(part))
    return found


def render(
    template: Template, values: dict[str, Any], limits: TemplateSettings | None = None
) -> Rendered:
    """Fill the template in; missing variables are named, sandbox escapes and runaways refused."""
    from chinwag.sandbox import Sandbox, refusals

    given = {**template.variables, **values}
    missing = sorted(variables_of(template) - set(given))
    if missing:
        raise InputError(
            f"Template {template.name!r} needs a value for: {', '.join(missing)} "
            f"(pass them as {missing[0]}=...)."
        )
    env = Sandbox(limits)  # one budget for the body, system prompt and title together
    with refusals(f"Template {template.name!r}"):
        return Rendered(
            name=template.name,
            prompt=env.render(template.body, given),
            system=None if template.system is None else env.render(template.system, given),
            title=None if template.title is None else env.render(template.title, given),
            bot=template.bot,
            parameters=template.parameters,
        )


class TemplateLibrary:
    """The built-in templates and those in a folder, the folder's winning by name."""

    def __init__(self, folder: Path, config: Config | None = None) -> None:
        self.folder = folder
        self.config = config  # its templates.* settings bound rendering

    def path(self, name: str) -> Path:
        """Where template NAME's file is (or would be); refuses a name that leaves the folder."""
        return self.folder / f"{check_name(name, 'template')}.md"

    def names(self) -> list[str]:
        files = {p.stem for p in self.folder.glob("*.md")} if self.folder.is_dir() else set()
        return sorted(files | set(BUILTIN))

    def get(self, name: str) -> Template:
        path = self.path(name)
        if path.is_file():
            return parse(name, read_file(path, "Template"), str(path))
        if name in BUILTIN:
            return parse(name, BUILTIN[name], "built-in")
        known = ", ".join(self.names())
        raise NotFoundError(f"No template {name!r}. Templates: {known}.")

    def all(self) -> list[Template]:
        return [self.get(name) for name in self.names()]

    def render(self, name: str, values: dict[str, Any]) -> Rendered:
        """Template NAME filled in, within the config's templates.* bounds."""
        limits = self.config.settings.templates if self.config is not None else None
        return render(self.get(name), values, limits)

    def save(self, name: str, text: str) -> Template:
        """Check a template's text and write it to the folder."""
        path = self.path(name)
        if not isinstance(text, str):
            raise InputError(
                f"Template {name!r}: the text must be a str, not {type(text).__name__}."
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(
                f"Template {name!r}: character {exc.start} cannot be saved as UTF-8 "
                f"(a lone surrogate?)."
            ) from None
        template = parse(name, text, str(path))
        self.folder.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return template


def turn_options(rendered: Rendered | None, given: Mapping[str, Any]) -> dict[str, Any]:
    """A turn's options from a filled-in template, by one rule everywhere (the library, the
    shell's /template, workflow steps): what the caller gives (not None) wins, and the
    template's bot, system prompt and parameters fill in the rest."""
    options: dict[str, Any] = {}
    if rendered is not None:
        options.update(rendered.parameters.model_dump(exclude_none=True))
        if rendered.bot is not None:
            options["bot"] = rendered.bot
        if rendered.system is not None:
            options["system"] = rendered.system
    options.update({k: v for k, v in given.items() if v is not None})
    return options


def variables_of_call(name: str, given: Any, more: Mapping[str, Any]) -> dict[str, Any]:
    """A template's (or workflow's) variables: a mapping, keyword arguments, or both."""
    if given is not None and not isinstance(given, Mapping):
        raise InputError(
            f"{name!r}: variables are a mapping of names to values, not {given!r:.60}; "
            "or pass them as keyword arguments."
        )
    return {**(given or {}), **more}


class Templates:
    """Prompt templates: built-in, and Markdown files in `<config dir>/templates/`
    (`client.templates`)."""

    def __init__(self, backend: Backend, conversations: Renamer) -> None:
        self._backend = backend
        self._conversations = conversations
        config = backend.config
        self.library = TemplateLibrary(config.paths.config_dir / "templates", config)

    async def list(self) -> builtins.list[Template]:
        return self.library.all()

    async def get(self, name: str) -> Template:
        return self.library.get(name)

    async def save(self, name: str, text: str) -> Template:
        """Check a template's text (front matter and Jinja2) and store it as NAME.md."""
        return self.library.save(name, text)

    async def render(
        self, name: str, variables: Mapping[str, Any] | None = None, /, **more: Any
    ) -> Rendered:
        """Fill a template in, in the sandbox; missing variables are named. Variables come
        as a mapping, as keyword arguments, or both."""
        return self.library.render(name, variables_of_call(name, variables, more))

    async def run(
        self,
        name: str,
        variables: Mapping[str, Any] | None = None,
        /,
        *,
        options: TurnOptions | None = None,
        **more: Any,
    ) -> Reply:
        """Send a filled-in template as a turn, with its bot, system prompt and parameters;
        `options` (bot, user, conversation, temperature...) win over the template's."""
        from chinwag.streams import complete

        rendered = await self.render(name, variables, **more)
        given: dict[str, Any] = dict(options or {})
        turn = self._backend.turn(rendered.prompt, stream=False, **turn_options(rendered, given))
        reply = await complete(turn)
        if rendered.title and given.get("conversation") is None:
            user = given.get("user")
            await self._conversations.rename(reply.conversation_id, rendered.title, user=user)
        return reply
