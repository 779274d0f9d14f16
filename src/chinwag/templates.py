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
no unsafe format strings, so a template cannot reach Python's internals.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chinwag.errors import InputError, NotFoundError
from chinwag.types import GenerationParams

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

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n?(.*)\Z", re.DOTALL)


class Template(BaseModel):
    """A parsed template: its front matter and its Jinja2 body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    bot: str | None = None
    system: str | None = None
    title: str | None = None
    parameters: GenerationParams = GenerationParams()
    variables: dict[str, Any] = Field(default_factory=dict)  # defaults
    body: str
    source: str  # "built-in" or the file's path


class Rendered(BaseModel):
    """A template filled in: what a turn sends."""

    model_config = ConfigDict(frozen=True)

    name: str
    prompt: str
    system: str | None
    title: str | None
    bot: str | None
    parameters: GenerationParams


def _environment() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)


def parse(name: str, text: str, source: str) -> Template:
    """A Template from its file's text; errors say what is wrong and where."""
    import yaml

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
        meta, body = loaded, match.group(2)
    try:
        template = Template.model_validate({**meta, "name": name, "body": body, "source": source})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise InputError(f"Template {name!r} ({source}): {key}: {err['msg']}.") from None
    from jinja2 import TemplateSyntaxError

    env = _environment()
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

    env = _environment()
    found: set[str] = set()
    for part in (template.body, template.system, template.title):
        if part:
            found |= meta.find_undeclared_variables(env.parse(part))
    return found


def render(template: Template, values: dict[str, Any]) -> Rendered:
    """Fill the template in; missing variables are named, sandbox escapes refused."""
    from jinja2 import TemplateError
    from jinja2.exceptions import SecurityError

    given = {**template.variables, **values}
    missing = sorted(variables_of(template) - set(given))
    if missing:
        raise InputError(
            f"Template {template.name!r} needs a value for: {', '.join(missing)} "
            f"(pass them as {missing[0]}=...)."
        )
    env = _environment()

    def fill(part: str | None) -> str | None:
        if part is None:
            return None
        try:
            return str(env.from_string(part).render(given))
        except SecurityError as exc:
            raise InputError(f"Template {template.name!r} tried something unsafe: {exc}.") from None
        except TemplateError as exc:
            raise InputError(f"Template {template.name!r} failed to render: {exc}.") from None

    return Rendered(
        name=template.name,
        prompt=fill(template.body) or "",
        system=fill(template.system),
        title=fill(template.title),
        bot=template.bot,
        parameters=template.parameters,
    )


class TemplateLibrary:
    """The built-in templates and those in a folder, the folder's winning by name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise InputError(
                f"Invalid template name {name!r}: use letters, digits, '-', '_' and '.'."
            )
        return self.folder / f"{name}.md"

    def names(self) -> list[str]:
        files = {p.stem for p in self.folder.glob("*.md")} if self.folder.is_dir() else set()
        return sorted(files | set(BUILTIN))

    def get(self, name: str) -> Template:
        path = self._path(name)
        if path.is_file():
            return parse(name, path.read_text(encoding="utf-8"), str(path))
        if name in BUILTIN:
            return parse(name, BUILTIN[name], "built-in")
        known = ", ".join(self.names())
        raise NotFoundError(f"No template {name!r}. Templates: {known}.")

    def all(self) -> list[Template]:
        return [self.get(name) for name in self.names()]

    def save(self, name: str, text: str) -> Template:
        """Check a template's text and write it to the folder."""
        path = self._path(name)
        template = parse(name, text, str(path))
        self.folder.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return template
