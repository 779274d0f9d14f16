"""`chinwag models`, `chinwag health`, `chinwag plugins` and `chinwag tools`."""

from __future__ import annotations

import sys

import click

from chinwag.cli import client_from


@click.command()
@click.pass_context
def models(ctx: click.Context) -> None:
    """The models of each configured provider."""
    client = client_from(ctx)
    if client.server is not None:  # the server's models, bots' slugs and provider/model
        click.echo("\n".join(client.models()))
        return
    for name in client.config.settings.providers:
        try:
            found = client.models(name)
            click.echo(f"{name}: {', '.join(found) or '(none)'}")
        except Exception as exc:  # one provider down must not hide the others
            click.echo(f"{name}: unavailable: {exc}")


@click.command()
@click.pass_context
def health(ctx: click.Context) -> None:
    """Which provider is the default and why, and what is reachable. Exit 1 if it is not."""
    report = client_from(ctx).health()
    click.echo(f"talking to: {report.server or 'the engine in this process'}")
    click.echo(f"default provider: {report.default_provider} ({report.reason})")
    for part in (report.store, *report.providers, *report.mcp):
        mark = "ok  " if part.ok else "DOWN"
        latency = f"{part.latency_ms:7.1f} ms" if part.latency_ms is not None else "       -  "
        click.echo(f"  {mark} {part.name:10s} {latency}  {part.detail}")
    for bot in report.broken_bots:
        click.echo(f"  BROKEN bot {bot.name}: {bot.detail}")
    for plugin in report.broken_plugins:
        click.echo(f"  BROKEN plugin {plugin.name}: {plugin.detail}")
    if not report.ok:
        ctx.exit(1)


@click.command()
def plugins() -> None:
    """The plugins: what each registers, and why any failed. Exit 1 if one did."""
    from chinwag import plugins as registry

    found = registry.report()
    for plugin in found:
        mark = "" if plugin.ok else "BROKEN "
        click.echo(f"{mark}{plugin.name} ({plugin.source})")
        for kind, names in plugin.registered.items():
            click.echo(f"  {kind}: {', '.join(names)}")
        for problem in plugin.problems:
            click.echo(f"  failed: {problem}")
    if not all(plugin.ok for plugin in found):
        sys.exit(1)


@click.group()
def tools() -> None:
    """The tools bots may name: Python tools from plugins, and MCP servers' tools."""


@tools.command("list")
@click.pass_context
def list_tools(ctx: click.Context) -> None:
    """Every tool as a bot names it, with its source (MCP servers are started to list)."""
    from chinwag import plugins as registry
    from chinwag.errors import ChinwagError

    for name, found in sorted(registry.registered("register_tools").items()):
        click.echo(f"{name:28s} python, from the plugin {found.plugin}")
    client = client_from(ctx)
    if client.server is not None:
        click.echo(f"(MCP servers are the server's own: {client.server})")
        return
    engine = client._async._engine
    for server in client.config.settings.mcp.servers:
        try:
            listed = client._call(lambda s=server: engine.mcp.tools([f"mcp:{s}/*"]))
        except ChinwagError as exc:
            click.echo(f"{f'mcp:{server}/*':28s} unavailable: {exc}")
            continue
        for t in listed:
            click.echo(f"{f'mcp:{server}/{t.name}':28s} {t.source}: {t.description}")
