"""`chinwag conversations`: list, show, rm, rename, export, import."""

from __future__ import annotations

from typing import IO

import click

from chinwag.cli import client_from

_user = click.option("--user", help="Whose conversations (default: the local user).")


@click.group()
def conversations() -> None:
    """Your stored conversations."""


@conversations.command("list")
@click.option("-n", "--limit", default=20, show_default=True, help="How many, newest first.")
@click.option("--offset", default=0, help="Skip this many first.")
@_user
@click.pass_context
def list_conversations(ctx: click.Context, limit: int, offset: int, user: str | None) -> None:
    """Conversations, newest activity first."""
    from chinwag.prices import money

    found = client_from(ctx).conversations.list(limit=limit, offset=offset, user=user)
    costs = [money(c.cost, c.unpriced) for c in found]
    width = max(map(len, costs), default=0)  # a column: "+ 3 unpriced" makes it wider
    for c, cost in zip(found, costs, strict=True):
        when = c.updated_at.astimezone().strftime("%Y-%m-%d %H:%M")
        click.echo(f"{c.id}  {when}  {cost:>{width}s}  {c.title or '(untitled)'}")


@conversations.command("show")
@click.argument("conversation_id")
@_user
@click.pass_context
def show(ctx: click.Context, conversation_id: str, user: str | None) -> None:
    """A conversation's current branch, as Markdown."""
    text = client_from(ctx).conversations.export(conversation_id, format="markdown", user=user)
    from chinwag.cli.render import AnswerPrinter

    with AnswerPrinter() as printer:
        printer.add(text)


@conversations.command("rm")
@click.argument("conversation_id")
@_user
@click.pass_context
def remove(ctx: click.Context, conversation_id: str, user: str | None) -> None:
    """Delete a conversation and its messages."""
    client_from(ctx).conversations.delete(conversation_id, user=user)
    click.echo(f"Deleted conversation {conversation_id}.")


@conversations.command("rename")
@click.argument("conversation_id")
@click.argument("title")
@_user
@click.pass_context
def rename(ctx: click.Context, conversation_id: str, title: str, user: str | None) -> None:
    """Give a conversation a new title."""
    client_from(ctx).conversations.rename(conversation_id, title, user=user)
    click.echo(f"Renamed conversation {conversation_id}: {title}")


@conversations.command("export")
@click.argument("conversation_id")
@click.option("-f", "--format", "fmt", type=click.Choice(["json", "markdown"]), default="json",
              show_default=True)  # fmt: skip
@click.option("-o", "--output", type=click.File("w"), default="-", help="A file (default: stdout).")
@_user
@click.pass_context
def export(
    ctx: click.Context,
    conversation_id: str,
    fmt: str,
    output: IO[str],
    user: str | None,
) -> None:
    """A conversation as JSON (every branch, for import) or Markdown."""
    output.write(client_from(ctx).conversations.export(conversation_id, format=fmt, user=user))


@conversations.command("import")
@click.argument("source", type=click.File("rb"), default="-")
@_user
@click.pass_context
def import_(ctx: click.Context, source: IO[bytes], user: str | None) -> None:
    """Store a conversation exported as JSON (from a file, or stdin)."""
    from chinwag.checks import utf8

    text = utf8(source.read(), "stdin" if source.name == "<stdin>" else str(source.name))
    conversation = client_from(ctx).conversations.import_json(text, user=user)
    click.echo(f"Imported conversation {conversation.id}.")
