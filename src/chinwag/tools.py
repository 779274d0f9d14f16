"""Tools (function calling): a plain Python function, sync or async, becomes a tool.

Its JSON schema comes from its type hints, its description from its docstring (the
first paragraph), and each argument's description from an `Args:` section:

    def weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        '''The current weather in a city.

        Args:
            city: The city's name.
        '''

Bots name tools that plugins register (the `register_tools` hook, chinwag.plugins); a
call can also pass functions directly: `client.ask(prompt, tools=[weather])`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, get_type_hints

from chinwag.errors import ConfigError, InputError


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments
    fn: Callable[..., Any]
    source: str = "python"  # or mcp:SERVER

    def schema(self) -> dict[str, Any]:
        """The tool as the OpenAI chat-completions API describes one."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    async def call(self, arguments: dict[str, Any]) -> str:
        """Run the function; its result as text for the model (JSON unless a string)."""
        import anyio

        if inspect.iscoroutinefunction(self.fn):
            result = await self.fn(**arguments)
        else:
            result = await anyio.to_thread.run_sync(lambda: self.fn(**arguments))
        return result if isinstance(result, str) else json.dumps(result, default=str)


def _arg_docs(doc: str) -> dict[str, str]:
    found: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args:
            match = re.match(r"^(\w+)\s*(\([^)]*\))?:\s*(.+)$", stripped)
            if match:
                found[match.group(1)] = match.group(3)
            elif stripped and not line.startswith((" ", "\t")):
                in_args = False
    return found


def tool(fn: Callable[..., Any] | Tool) -> Tool:
    """The Tool for a function, from its signature, type hints and docstring."""
    if isinstance(fn, Tool):
        return fn
    from pydantic import create_model

    doc = inspect.getdoc(fn) or ""
    description = doc.split("\n\n", 1)[0].strip() or fn.__name__
    hints = get_type_hints(fn)
    docs = _arg_docs(doc)
    fields: dict[str, Any] = {}
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        from pydantic import Field

        default = ... if param.default is param.empty else param.default
        fields[name] = (hints.get(name, Any), Field(default, description=docs.get(name)))
    model = create_model(f"{fn.__name__}_arguments", **fields)
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return Tool(name=fn.__name__, description=description, parameters=schema, fn=fn)


@functools.cache
def _registered_tool(fn: Callable[..., Any], name: str) -> Tool:
    return dataclasses.replace(tool(fn), name=name)


def registered(name: str) -> Tool:
    """The tool a plugin registered under `name`; only a tool that is named is built, so
    one that cannot be built stops only the bots that name it."""
    from chinwag import plugins

    found = plugins.find("register_tools", name)
    if found is None:
        known = ", ".join(sorted(plugins.registered("register_tools"))) or "none installed"
        raise ConfigError(
            f"No tool named {name!r} is registered (tools: {known})"
            f"{plugins.see_broken('register_tools')}."
        )
    try:
        return _registered_tool(found.value, name)
    except Exception as exc:  # its schema cannot be made: the plugin's fault, said in one line
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"The tool {name!r} from plugin {found.plugin!r} cannot be used: {reason}"
        ) from exc


def resolve(named: Iterable[str], given: Iterable[Callable[..., Any] | Tool] | None) -> list[Tool]:
    """A bot's tools (by registered name) and a call's (functions), one per name."""
    tools = {name: registered(name) for name in named}
    for item in given or ():
        if not callable(item) and not isinstance(item, Tool):
            raise InputError(f"tools= takes functions, not {item!r}.")
        made = tool(item)
        tools[made.name] = made
    return list(tools.values())


def parse_arguments(raw: str) -> dict[str, Any]:
    """A tool call's arguments, from the JSON text the model wrote."""
    if not raw.strip():
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("the arguments are not a JSON object")
    return value
