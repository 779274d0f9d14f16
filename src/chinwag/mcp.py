"""Tools from Model Context Protocol servers, through the official `mcp` SDK.

A server is configured under `mcp.servers.<name>`, as a command line (stdio) or a URL
(streamable HTTP), and its tools are named by bots and calls as `mcp:<name>/<tool>` or
`mcp:<name>/*`. Each server starts on first use, once per engine, in a background task
that holds its connection, and stops when the engine closes. A server that cannot start
or has stopped fails the turns that name it with a clear error, and shows in health();
other tools keep working.

A call runs only when it is allowed: by `mcp.servers.<name>.allow` (true, or a list of
tool names) in config, or by the person at the shell, who is asked the first time per
tool (`/tools` lists and allows them). Elsewhere a call config does not allow is refused.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import anyio

from chinwag.errors import ConfigError, ToolError
from chinwag.types import ComponentHealth

if TYPE_CHECKING:
    from chinwag.background import Background, Job
    from chinwag.config import MCPServerSettings
    from chinwag.tools import Tool

log = logging.getLogger(__name__)
PREFIX = "mcp:"

# Asked before a call that config does not allow: (server, tool, arguments) -> allowed.
Consent = Callable[[str, str, dict[str, Any]], Awaitable[bool]]


def is_mcp(name: str) -> bool:
    return name.startswith(PREFIX)


def split(name: str) -> tuple[str, str]:
    """`mcp:files/read_file` as ("files", "read_file"); the tool may be `*`."""
    server, slash, tool = name[len(PREFIX) :].partition("/")
    if not server or not slash or not tool:
        raise ConfigError(
            f"{name!r} does not name an MCP tool: write mcp:SERVER/TOOL, or mcp:SERVER/* for "
            "all of a server's tools."
        )
    return server, tool


class Server:
    """One MCP server's connection, held open by a background job."""

    def __init__(self, name: str, settings: MCPServerSettings) -> None:
        self.name = name
        self.settings = settings
        self.tools: dict[str, Tool] = {}
        self.failure: str | None = None  # why it is not running, once it failed or stopped
        self.client: Any = None
        self.job: Job | None = None
        self.ready = anyio.Event()
        self.allowed: set[str] = set()  # tools the person at the shell allowed
        self.crashed = False  # it ran, then stopped: the next use starts it again

    @property
    def where(self) -> str:
        s = self.settings
        return s.url or " ".join(_command(s)) or "(nothing)"

    def _target(self) -> Any:
        from mcp import StdioServerParameters

        s = self.settings
        if s.url is not None:
            return s.url
        command = _command(s)
        return StdioServerParameters(command=command[0], args=command[1:], env=s.env or None)

    async def run(self) -> None:
        """Connect, list the tools, and hold the connection until cancelled. The SDK's
        client is entered and left in this one task, as its task group requires."""
        from chinwag.tools import Tool

        try:
            try:
                from mcp import Client
            except ImportError:
                self.failure = "MCP tools need their extra: pip install 'chinwag[mcp]'"
                return
            async with Client(self._target(), read_timeout_seconds=self.settings.timeout) as client:
                listing = await client.list_tools()
                self.tools = {
                    t.name: Tool(
                        name=t.name,
                        description=t.description or t.name,
                        parameters=dict(t.input_schema or {"type": "object"}),
                        fn=self._caller(t.name),
                        source=f"mcp:{self.name}",
                    )
                    for t in listing.tools
                }
                self.client = client
                self.ready.set()
                await anyio.sleep_forever()
        except Exception as exc:  # the SDK's, the process's, the network's: said in one line
            self.failure = _reason(exc)
        finally:
            self.client = None
            if self.failure is None:
                self.failure = "stopped"
            self.ready.set()
            log.info("MCP server %s ended: %s", self.name, self.failure)

    def _caller(self, tool: str) -> Callable[..., Awaitable[str]]:
        async def call(**arguments: Any) -> str:
            client = self.client
            if client is None:
                raise ToolError(f"The MCP server {self.name!r} is not running ({self.failure}).")
            try:
                result = await client.call_tool(tool, arguments)
            except Exception as exc:
                await self.alive()  # a crash marks it, so the next turn starts it again
                raise ToolError(f"The MCP server {self.name!r} failed: {_reason(exc)}") from exc
            text = "\n".join(getattr(part, "text", f"[{part.type}]") for part in result.content)
            if result.is_error:
                raise ToolError(text or f"the tool {tool!r} failed")
            if not text and result.structured_content is not None:
                import json

                return json.dumps(result.structured_content)
            return text

        return call

    async def alive(self) -> bool:
        """Whether it still answers (a listing, past any cache: ping is gone from newer
        protocol versions); one that does not is stopped, as crashed."""
        client = self.client
        if client is None:
            return False
        try:
            with anyio.fail_after(min(5.0, self.settings.timeout)):
                await client.list_tools(cache_mode="bypass")
            return True
        except Exception as exc:
            self.client = None
            self.crashed = True
            self.failure = f"it stopped answering ({_reason(exc)})"
            if self.job is not None:
                await self.job.stop()
            return False

    def allows(self, tool: str) -> bool:
        allow = self.settings.allow
        return allow is True or (isinstance(allow, list) and tool in allow) or tool in self.allowed


class Servers:
    """The MCP servers of one engine: started on first use, stopped with it."""

    def __init__(self, servers: dict[str, MCPServerSettings], background: Background) -> None:
        self._settings = servers
        self._background = background
        self._running: dict[str, Server] = {}
        self.consent: Consent | None = None  # the shell's question; None: config decides

    async def server(self, name: str) -> Server:
        """The server called `name`, started now if it is not yet; a ConfigError if it is
        not configured, cannot start, or has stopped."""
        found = self._running.get(name)
        if found is not None and found.crashed:
            allowed, found = found.allowed, None
        else:
            allowed = set()
        if found is None:
            settings = self._settings.get(name)
            if settings is None:
                known = ", ".join(sorted(self._settings)) or "none are configured"
                raise ConfigError(
                    f"No MCP server {name!r} (mcp.servers: {known}). Add it to config.yaml "
                    f"under mcp.servers.{name} with a command or a url."
                )
            found = self._running[name] = Server(name, settings)
            found.allowed = allowed
            found.job = self._background.spawn(found.run, f"the MCP server {name}", lasting=True)
            if found.job is None:
                found.failure = "there is no event loop task group to run it in"
                found.ready.set()
        with anyio.move_on_after(found.settings.timeout):
            await found.ready.wait()
        if not found.ready.is_set():
            found.failure = f"it did not start within {found.settings.timeout:g} s"
            if found.job is not None:
                await found.job.stop()
        if found.client is None:
            raise ConfigError(
                f"The MCP server {name!r} ({found.where}) is not running: {found.failure}. "
                f"Check mcp.servers.{name}; it is tried again in a new session."
            )
        return found

    async def _select(self, name: str) -> tuple[Server, list[Tool]]:
        """The server and tools `mcp:server/tool` or `mcp:server/*` names."""
        server_name, tool = split(name)
        server = await self.server(server_name)
        if tool == "*":
            return server, list(server.tools.values())
        if tool not in server.tools:
            have = ", ".join(sorted(server.tools)) or "none"
            raise ConfigError(
                f"The MCP server {server_name!r} has no tool {tool!r} (it has: {have})."
            )
        return server, [server.tools[tool]]

    async def tools(self, names: Iterable[str]) -> list[Tool]:
        """The tools these names give, each guarded by consent."""
        found: dict[str, Tool] = {}
        for name in names:
            server, chosen = await self._select(name)
            for t in chosen:
                found[t.name] = dataclasses.replace(t, fn=self._guarded(server, t))
        return list(found.values())

    async def states(self, names: Iterable[str]) -> list[tuple[str, bool]]:
        """Each tool these names give, as `mcp:server/tool`, and whether it may run."""
        listed: list[tuple[str, bool]] = []
        for name in names:
            server, chosen = await self._select(name)
            listed += [(f"{PREFIX}{server.name}/{t.name}", server.allows(t.name)) for t in chosen]
        return listed

    async def allow(self, names: Iterable[str]) -> list[str]:
        """Let the tools these names give run, for this engine's life; their names."""
        allowed: list[str] = []
        for name in names:
            server, chosen = await self._select(name)
            server.allowed.update(t.name for t in chosen)
            allowed += [f"{PREFIX}{server.name}/{t.name}" for t in chosen]
        return allowed

    def _guarded(self, server: Server, tool: Tool) -> Callable[..., Awaitable[str]]:
        call = tool.fn

        async def guarded(**arguments: Any) -> str:
            if not server.allows(tool.name):
                if self.consent is None or not await self.consent(
                    server.name, tool.name, arguments
                ):
                    raise ToolError(
                        f"The tool {tool.name!r} of MCP server {server.name!r} was not "
                        f"allowed to run: allow it in the shell (/tools), or set "
                        f"mcp.servers.{server.name}.allow in config."
                    )
                server.allowed.add(tool.name)
            result: str = await call(**arguments)
            return result

        return guarded

    async def health(self) -> list[ComponentHealth]:
        """Every configured server: started (if not yet) and listed, or why not."""
        checks: dict[str, ComponentHealth] = {}

        async def check(name: str) -> None:
            started = time.perf_counter()
            try:
                server = await self.server(name)
                if not await server.alive():
                    server = await self.server(name)  # crashed: started again
            except ConfigError as exc:
                checks[name] = ComponentHealth(
                    name=f"mcp:{name}", ok=False, latency_ms=None, detail=str(exc)
                )
                return
            checks[name] = ComponentHealth(
                name=f"mcp:{name}",
                ok=True,
                latency_ms=(time.perf_counter() - started) * 1000,
                detail=f"{len(server.tools)} tools: {', '.join(sorted(server.tools))}",
            )

        async with anyio.create_task_group() as group:
            for name in self._settings:
                group.start_soon(check, name)
        return [checks[name] for name in self._settings]

    def asks(self, tool: str) -> tuple[str, str] | None:
        """(server, tool) if a call of `tool` would ask for consent first; else None."""
        for server in self._running.values():
            if tool in server.tools and not server.allows(tool):
                return server.name, tool
        return None

    async def aclose(self) -> None:
        for server in self._running.values():
            if server.job is not None:
                await server.job.stop()
        self._running.clear()


def _command(settings: MCPServerSettings) -> list[str]:
    command = settings.command
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else list(command)


def _reason(exc: BaseException) -> str:
    """An exception (or an exception group's first leaf) in one line."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = ["PREFIX", "Consent", "Server", "Servers", "is_mcp", "split"]
