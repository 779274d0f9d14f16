"""Plugins: one mechanism, pluggy's (as in simonw/llm), adds providers, tools, search
backends and commands.

A plugin is a module (or any object) with functions named after the hooks in `Hooks`
and marked `@hookimpl`; each hook receives a `register` callable. A distribution names
the module in the `chinwag` entry point group:

    [project.entry-points.chinwag]
    echo = "chinwag_echo"

chinwag's own providers, search backend and commands come from `chinwag.default_plugins`
through the same hooks, registered first, so a plugin cannot replace a built-in name.

Installed plugins load only when a name is not a built-in one, or when everything is
listed (`chinwag --help`, `chinwag plugins`, `health()`): running a built-in command or
provider imports no plugin. A plugin that cannot be imported, whose hook raises, or
that registers something unusable is recorded with a one-line reason, and everything
else keeps working.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any, Literal, get_args

import pluggy

if TYPE_CHECKING:
    import click

    from chinwag.config import Paths, ProviderSettings, SearchSettings
    from chinwag.providers.base import Provider

GROUP = "chinwag"  # the entry point group, and pluggy's project name
BUILTIN = "chinwag"  # the name chinwag's own plugin is registered under
_DEFAULT_PLUGINS = "chinwag.default_plugins"  # by name, as any plugin: it imports the CLI

hookspec = pluggy.HookspecMarker(GROUP)
hookimpl = pluggy.HookimplMarker(GROUP)

ProviderFactory = Callable[[str, "ProviderSettings", "Paths"], "Provider"]
# Returns a chinwag.search.SearchProvider: async search(query, limit) and aclose().
SearchFactory = Callable[["SearchSettings"], Any]

Hook = Literal[
    "register_providers", "register_tools", "register_search_backends", "register_commands"
]
HOOKS: tuple[Hook, ...] = get_args(Hook)
KINDS: dict[Hook, tuple[str, str]] = {  # what each hook registers: one, and many
    "register_providers": ("provider", "providers"),
    "register_tools": ("tool", "tools"),
    "register_search_backends": ("search backend", "search backends"),
    "register_commands": ("command", "commands"),
}


class Hooks:
    """The hooks a plugin can implement, each as a function marked `@hookimpl`."""

    @hookspec
    def register_providers(self, register: Callable[[str, ProviderFactory], None]) -> None:
        """Add provider types: `register("echo", EchoProvider)`.

        The factory is called as factory(name, settings, paths) and returns a Provider
        (chinwag.providers.base); config selects it with `providers.<name>.type: echo`.
        """

    @hookspec
    def register_tools(self, register: Callable[..., None]) -> None:
        """Add tools that bots name: `register(function)` or `register(function, name=...)`.

        The function becomes a tool as `client.ask(..., tools=[function])` would make it.
        """

    @hookspec
    def register_search_backends(self, register: Callable[[str, SearchFactory], None]) -> None:
        """Add search backends: `register("echo", EchoSearch)`.

        The factory is called with the SearchSettings and returns an object with
        `async search(query, limit) -> list[Source]` and `async aclose()`; config
        selects it with `search.provider: echo`.
        """

    @hookspec
    def register_commands(self, register: Callable[[click.Command], None]) -> None:
        """Add `chinwag` commands: `register(command)` with a click command or group."""


@dataclass(frozen=True)
class Registration:
    """One thing a plugin registered under a hook."""

    name: str
    value: Any
    plugin: str


@dataclass
class Plugin:
    """A plugin: where it comes from, what it registered, and what went wrong."""

    name: str
    source: str  # "built in", or the distribution and its version
    registered: dict[str, list[str]] = field(default_factory=dict)  # kind -> names
    problems: list[str] = field(default_factory=list)  # one line each

    @property
    def ok(self) -> bool:
        return not self.problems


def _one_line(exc: BaseException) -> str:
    text = [line.strip() for line in str(exc).strip().splitlines()]
    if isinstance(exc, pluggy.PluginValidationError):  # the first line names only the hook
        return "; ".join(text[1:])
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class _Refused(ValueError):
    """One register(...) call chinwag cannot use; the message says why."""


def _named(name: object, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise _Refused(f"a {what} needs a name, not {name!r}")
    return name


def _accept_factory(name: str, factory: Callable[..., Any]) -> tuple[str, Any]:
    name = _named(name, "provider or search backend")
    if not callable(factory):
        raise _Refused(f"{name!r}: {factory!r} is not a factory (a class or function)")
    return name, factory


def _accept_tool(function: Callable[..., Any], name: str | None = None) -> tuple[str, Any]:
    if not callable(function):
        raise _Refused(f"{function!r} is not a function")
    return _named(name or getattr(function, "__name__", None), "tool"), function


def _accept_command(command: click.Command) -> tuple[str, Any]:
    import click

    if not isinstance(command, click.Command):
        raise _Refused(f"{command!r} is not a click command")
    name = _named(command.name, "command")
    if not may_name_command(name):
        raise _Refused(f"a command's name is one word, not an option: not {name!r}")
    return name, command


def may_name_command(word: str) -> bool:
    """Whether a word can be a command's name: `chinwag "two words"` is always a prompt."""
    return not word.startswith("-") and not any(c.isspace() for c in word)


# How one register(...) call of each hook becomes (name, value); raising refuses it.
_ACCEPT: dict[Hook, Callable[..., tuple[str, Any]]] = {
    "register_providers": _accept_factory,
    "register_tools": _accept_tool,
    "register_search_backends": _accept_factory,
    "register_commands": _accept_command,
}


def _may_have_plugins() -> bool:
    """Whether any distribution on sys.path may name a plugin, read from the files.

    importlib.metadata takes about 30 ms to import where nothing else needs it (as in
    `chinwag --help`); this look takes about 1 ms. Anything it cannot read for sure (a
    zip or egg on the path, a finder serving distributions from elsewhere) answers yes.
    """
    from importlib.machinery import PathFinder

    if any(
        hasattr(finder, "find_distributions") and finder is not PathFinder
        for finder in sys.meta_path
    ):
        return True
    for entry in sys.path:
        if os.path.isfile(entry) or entry.endswith(".egg"):
            return True
        try:
            found = list(os.scandir(entry or "."))
        except OSError:
            continue
        for item in found:
            if item.name.endswith(".egg"):
                return True
            if not item.name.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(item.path, "entry_points.txt"), encoding="utf-8") as f:
                    if re.search(rf"^\s*\[\s*{GROUP}\s*\]\s*$", f.read(), re.MULTILINE):
                        return True
            except (OSError, UnicodeDecodeError):
                continue
    return False


class _Registry:
    """The plugin manager, what each hook registered, and every problem, per plugin."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(Hooks)
        # By name; one refused for a name taken by another distribution is kept apart.
        self.plugins: dict[str, Plugin] = {BUILTIN: Plugin(BUILTIN, "built in")}
        self.collected: dict[Hook, tuple[dict[str, Registration], dict[str, list[str]]]] = {}
        self.loaded = False
        self.pm.register(import_module(_DEFAULT_PLUGINS), name=BUILTIN)

    def load(self) -> None:
        """Register every plugin of the `chinwag` entry point group, once."""
        if self.loaded:
            return
        self.loaded = True
        self.collected.clear()  # what the hooks registered changes with the new plugins
        if not _may_have_plugins():
            return
        from importlib.metadata import distributions

        for dist in distributions():
            for ep in dist.entry_points:
                if ep.group == GROUP:
                    self._load_one(ep.name, f"{dist.metadata['Name']} {dist.version}", ep.load)

    def _load_one(self, name: str, source: str, load: Callable[[], object]) -> None:
        known = self.plugins.get(name)
        if known is not None:
            if known.source != source:  # the same distribution twice on sys.path is no clash
                taken = f"the name is taken by {known.source}: not loaded"
                self.plugins[f"{name} from {source}"] = Plugin(name, source, problems=[taken])
            return
        self.plugins[name] = found = Plugin(name, source)
        try:
            plugin = load()
            self.pm.register(plugin, name=name)
        except Exception as exc:  # a broken plugin is reported, the others go on
            if self.pm.has_plugin(name):  # registered in part before the error
                self.pm.unregister(name=name)
            found.problems.append(f"cannot be loaded: {_one_line(exc)}")
            return
        for caller in self.pm.get_hookcallers(plugin) or ():
            if not caller.has_spec():
                hooks = ", ".join(HOOKS)
                found.problems.append(f"{caller.name} is not a chinwag hook (hooks: {hooks})")

    def collect(self, hook: Hook) -> dict[str, Registration]:
        """Call each plugin's hook on its own, so one that raises stops only itself."""
        if hook not in self.collected:
            found: dict[str, Registration] = {}
            problems: dict[str, list[str]] = {}
            for impl in getattr(self.pm.hook, hook).get_hookimpls():
                plugin = impl.plugin_name

                def register(*args: Any, _plugin: str = plugin, **kwargs: Any) -> None:
                    try:
                        name, value = _ACCEPT[hook](*args, **kwargs)
                        if name in found:
                            raise _Refused(
                                f"{KINDS[hook][0]} {name!r} is already registered by "
                                f"plugin {found[name].plugin!r}"
                            )
                    except Exception as exc:  # refused alone: the rest of the hook goes on
                        why = str(exc) if isinstance(exc, _Refused) else _one_line(exc)
                        problems.setdefault(_plugin, []).append(f"{hook}: {why}")
                        return
                    found[name] = Registration(name, value, _plugin)

                try:
                    impl.function(*[{"register": register}[arg] for arg in impl.argnames])
                except Exception as exc:
                    problems.setdefault(plugin, []).append(f"{hook} raised {_one_line(exc)}")
            self.collected[hook] = (found, problems)
        return self.collected[hook][0]

    def report(self) -> list[Plugin]:
        self.load()
        plugins = {
            key: Plugin(p.name, p.source, problems=list(p.problems))
            for key, p in self.plugins.items()
        }
        for hook in HOOKS:
            for registration in self.collect(hook).values():
                kind = plugins[registration.plugin].registered.setdefault(KINDS[hook][1], [])
                kind.append(registration.name)
            for name, problems in self.collected[hook][1].items():
                plugins[name].problems.extend(problems)
        return list(plugins.values())


_lock = threading.RLock()
_registry: _Registry | None = None


def _current() -> _Registry:
    global _registry
    if _registry is None:
        _registry = _Registry()
    return _registry


def find(hook: Hook, name: str) -> Registration | None:
    """What a hook registered under `name`: a built-in one without loading any plugin."""
    with _lock:
        registry = _current()
        found = registry.collect(hook).get(name)
        if found is None and not registry.loaded:
            registry.load()
            found = registry.collect(hook).get(name)
        return found


def registered(hook: Hook) -> dict[str, Registration]:
    """Everything registered under a hook, by name, with every plugin loaded."""
    with _lock:
        registry = _current()
        registry.load()
        return dict(registry.collect(hook))


def report() -> list[Plugin]:
    """Every plugin, the built-in one first: what it registered and what went wrong."""
    with _lock:
        return _current().report()


def broken() -> list[Plugin]:
    """The plugins with a problem (`chinwag plugins` and `health()` list them)."""
    return [plugin for plugin in report() if not plugin.ok]


def see_broken(hook: Hook) -> str:
    """For a "not found" message: the plugins that failed to load or in this hook."""
    with _lock:
        registry = _current()
        names = {p.name for p in registry.plugins.values() if p.problems}
        names |= set(registry.collected.get(hook, ({}, {}))[1])
    if not names:
        return ""
    return f"; failed plugins: {', '.join(sorted(names))} (`chinwag plugins` says why)"


def reload() -> None:
    """Forget what was loaded: the next use loads the plugins again (after an install)."""
    global _registry
    with _lock:
        _registry = None


__all__ = [
    "GROUP",
    "HOOKS",
    "Hook",
    "Hooks",
    "Plugin",
    "ProviderFactory",
    "Registration",
    "SearchFactory",
    "broken",
    "find",
    "hookimpl",
    "hookspec",
    "may_name_command",
    "registered",
    "reload",
    "report",
    "see_broken",
]
