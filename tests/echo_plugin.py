"""An example chinwag plugin: a provider, a tool, a search backend and a command.

A distribution makes this module a plugin by naming it in the `chinwag` entry point
group (the tests install one that does):

    [project.entry-points.chinwag]
    echo = "tests.echo_plugin"

Each hook receives a `register` callable; see chinwag.plugins.Hooks.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

import click

from chinwag.config import Paths, ProviderSettings, SearchSettings
from chinwag.plugins import ProviderFactory, SearchFactory, hookimpl
from chinwag.providers import ChatRequest, Finish, ProviderEvent, ProviderHealth
from chinwag.types import Source, TextDelta


class EchoProvider:
    """Answers with the last message: `providers.<name>.type: echo`."""

    def __init__(self, name: str, settings: ProviderSettings, paths: Paths) -> None:
        self.name = name
        self.settings = settings

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        yield TextDelta(text=f"echo: {request.messages[-1]['content']}")
        yield Finish("stop")

    async def models(self) -> list[str]:
        return ["echo"]

    async def health(self) -> ProviderHealth:
        return ProviderHealth(self.name, True, 0.0, "always")

    def context_window(self, model: str) -> int | None:
        return None

    async def aclose(self) -> None:
        pass


def shout(text: str) -> str:
    """The text in capitals.

    Args:
        text: What to shout.
    """
    return text.upper()


class EchoSearch:
    """One result that repeats the query: `search.provider: echo`."""

    def __init__(self, settings: SearchSettings) -> None:
        self.settings = settings

    async def search(self, query: str, limit: int) -> list[Source]:
        return [Source(title=f"About {query}", url="https://echo.example/", snippet=query)]

    async def aclose(self) -> None:
        pass


@click.command()
@click.argument("words", nargs=-1)
def echo(words: tuple[str, ...]) -> None:
    """Print the words back."""
    click.echo(" ".join(words))


@hookimpl
def register_providers(register: Callable[[str, ProviderFactory], None]) -> None:
    register("echo", EchoProvider)


@hookimpl
def register_tools(register: Callable[..., None]) -> None:
    register(shout)


@hookimpl
def register_search_backends(register: Callable[[str, SearchFactory], None]) -> None:
    register("echo", EchoSearch)


@hookimpl
def register_commands(register: Callable[[click.Command], None]) -> None:
    register(echo)
