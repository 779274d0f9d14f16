"""chinwag's own providers, search backend and commands, registered through the plugin
hooks (chinwag.plugins) as any plugin's are. Each imports its module only when used."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chinwag.plugins import ProviderFactory, SearchFactory, hookimpl

if TYPE_CHECKING:
    import click

    from chinwag.config import Paths, ProviderSettings, SearchSettings
    from chinwag.providers.base import Provider
    from chinwag.search import SearchProvider


def _openai(name: str, settings: ProviderSettings, paths: Paths) -> Provider:
    from chinwag.providers.openai import OpenAIProvider

    return OpenAIProvider(name, settings, paths)


def _local(name: str, settings: ProviderSettings, paths: Paths) -> Provider:
    from chinwag.providers.local import LocalProvider

    return LocalProvider(name, settings, paths)


def _searxng(settings: SearchSettings) -> SearchProvider:
    from chinwag.search import SearxngSearch

    return SearxngSearch(settings)


# name -> (module:attribute, one-line help shown before the module is imported)
COMMANDS: dict[str, tuple[str, str]] = {
    "ask": ("chinwag.cli.ask:ask", "Answer a prompt (the default command)."),
    "chat": ("chinwag.cli.shell:chat", "An interactive chat shell."),
    "bots": ("chinwag.cli.bots:bots", "List, show, add, edit, remove and export bots."),
    "conversations": (
        "chinwag.cli.conversations:conversations",
        "List, show, remove, rename, export and import conversations.",
    ),
    "template": ("chinwag.cli.templates:template", "List, show, run and edit prompt templates."),
    "workflow": ("chinwag.cli.workflows:workflow", "List, show and run workflows."),
    "stats": ("chinwag.cli.stats:stats", "Usage in tokens, words and cost, per day."),
    "config": ("chinwag.cli.configure:config", "Show, get, set and edit settings."),
    "models": ("chinwag.cli.status:models", "The models of each configured provider."),
    "health": ("chinwag.cli.status:health", "The default provider and what is reachable."),
    "plugins": ("chinwag.cli.status:plugins", "The plugins: what each adds, and any failure."),
    "tools": ("chinwag.cli.status:tools", "The tools bots may name: Python and MCP servers'."),
    "serve": ("chinwag.cli.serve:serve", "Serve the OpenAI API and chinwag's over HTTP."),
    "users": ("chinwag.cli.accounts:users", "Add and list the users of a chinwag server."),
    "keys": (
        "chinwag.cli.accounts:keys",
        "Store provider keys; create, list and revoke server keys.",
    ),
}


@hookimpl
def register_providers(register: Callable[[str, ProviderFactory], None]) -> None:
    register("openai", _openai)
    register("local", _local)


@hookimpl
def register_search_backends(register: Callable[[str, SearchFactory], None]) -> None:
    register("searxng", _searxng)


@hookimpl
def register_commands(register: Callable[[click.Command], None]) -> None:
    from chinwag.cli import LazyCommand

    for name, (target, short_help) in COMMANDS.items():
        register(LazyCommand(name, target, short_help))
