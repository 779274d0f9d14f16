"""`chinwag template`: list, show, run, edit."""

from __future__ import annotations

from pathlib import Path

import click

from chinwag.cli import client_from, open_in_editor
from chinwag.cli.options import parse_variables


@click.group()
def template() -> None:
    """Prompt templates: Markdown with YAML front matter and a Jinja2 body."""


@template.command("list")
@click.pass_context
def list_templates(ctx: click.Context) -> None:
    """The templates, built-in and yours."""
    for t in client_from(ctx).templates.list():
        where = "built-in" if t.source == "built-in" else "yours"
        click.echo(f"{t.name:20s} {where:9s} {t.description}")


@template.command("show")
@click.argument("name")
@click.pass_context
def show(ctx: click.Context, name: str) -> None:
    """A template's source."""
    t = client_from(ctx).templates.get(name)
    from chinwag.templates import BUILTIN, read_file

    text = BUILTIN[name] if t.source == "built-in" else read_file(Path(t.source), "Template")
    click.echo(text, nl=False)


@template.command("run")
@click.argument("name")
@click.option("-v", "--var", "pairs", multiple=True, metavar="NAME=VALUE", help="A variable.")
@click.option("-b", "--bot", help="Another bot than the template's.")
@click.option("--user", help="Whose turn this is.")
@click.pass_context
def run(
    ctx: click.Context, name: str, pairs: tuple[str, ...], bot: str | None, user: str | None
) -> None:
    """Fill a template in and send it; prints the answer."""
    from chinwag.plan import TurnOptions

    options: TurnOptions = {"bot": bot, "user": user}
    reply = client_from(ctx).templates.run(name, parse_variables(pairs), options=options)
    click.echo(reply.text)


@template.command("edit")
@click.argument("name")
@click.pass_context
def edit(ctx: click.Context, name: str) -> None:
    """Edit (or create) a template in $EDITOR; a built-in one is copied first."""
    from chinwag.templates import BUILTIN

    client = client_from(ctx)
    library = client.templates.library
    path = library.path(name)  # refuses a name that would leave the templates folder
    if not path.exists():
        library.save(name, BUILTIN.get(name, "---\ndescription: \n---\n{{ text }}\n"))
    open_in_editor(path)
    client.templates.get(name)  # read it back: a mistake is reported now
    click.echo(f"{path} is valid.")
