"""`chinwag bots`: list, show, add, edit, rm, export."""

from __future__ import annotations

from typing import Any

import click

from chinwag.cli import client_from

_user = click.option("--user", help="Whose bots (default: the local user).")


@click.group()
def bots() -> None:
    """Bots: built-in, from YAML files in the config dir, and your own."""


@bots.command("list")
@_user
@click.pass_context
def list_bots(ctx: click.Context, user: str | None) -> None:
    """Every bot you can use, and the bot files that are broken."""
    from chinwag.bots import BotFiles

    client = client_from(ctx)
    for bot in client.bots.list(user=user):
        model = bot.model or "default model"
        click.echo(f"{bot.slug:20s} {bot.name:24s} {model:20s} {bot.description}")
    for slug, why in BotFiles.of(client.config).broken().items():
        click.echo(f"{slug:20s} {'BROKEN':24s} {'-':20s} {why}")


def _fields(
    name: str | None, model: str | None, provider: str | None, system: str | None,
    description: str | None, params: tuple[str, ...],
) -> dict[str, Any]:  # fmt: skip
    from chinwag.cli.options import parse_params

    fields: dict[str, Any] = {
        "name": name, "model": model, "provider": provider, "system_prompt": system,
        "description": description,
    }  # fmt: skip
    if params:
        fields["params"] = parse_params(params)
    return {k: v for k, v in fields.items() if v is not None}


def _bot_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option("--model", help="The model it uses."),
            click.option("--provider", help="The provider it uses."),
            click.option("-s", "--system", help="Its system prompt."),
            click.option("--description"),
            click.option(
                "-o",
                "--option",
                "params",
                multiple=True,
                metavar="KEY=VALUE",
                help="A sampling setting, as for ask.",
            ),
        ]
    ):
        f = option(f)
    return f


@bots.command("export")
@click.argument("bot")
@_user
@click.pass_context
def export(ctx: click.Context, bot: str, user: str | None) -> None:
    """A bot as YAML, for a file in the config dir's bots/ folder."""
    click.echo(client_from(ctx).bots.export(bot, user=user), nl=False)


bots.add_command(export, name="show")  # showing a bot is printing its YAML


@bots.command("add")
@click.argument("name")
@click.option("--slug")
@_bot_options
@_user
@click.pass_context
def add(ctx: click.Context, /, name: str, slug: str | None, user: str | None, **given: Any) -> None:
    """Save a new bot."""
    fields = _fields(name, **given)
    if slug:
        fields["slug"] = slug
    bot = client_from(ctx).bots.create(user=user, **fields)
    click.echo(f"Added bot {bot.slug} ({bot.uid}).")


@bots.command("edit")
@click.argument("bot")
@click.option("--name")
@_bot_options
@_user
@click.pass_context
def edit(ctx: click.Context, /, bot: str, name: str | None, user: str | None, **given: Any) -> None:
    """Change one of your bots."""
    changes = _fields(name, **given)
    if not changes:
        raise click.UsageError("Say what to change, e.g. --model or --system.")
    updated = client_from(ctx).bots.update(bot, user=user, **changes)
    click.echo(f"Updated bot {updated.slug}.")


@bots.command("rm")
@click.argument("bot")
@_user
@click.pass_context
def remove(ctx: click.Context, bot: str, user: str | None) -> None:
    """Delete one of your bots."""
    client_from(ctx).bots.delete(bot, user=user)
    click.echo(f"Deleted bot {bot}.")
