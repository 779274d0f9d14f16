"""`chinwag workflow`: list, show, run."""

from __future__ import annotations

from pathlib import Path

import click

from chinwag.cli import client_from
from chinwag.cli.options import parse_variables
from chinwag.cli.render import echo_err


@click.group()
def workflow() -> None:
    """Workflows: YAML lists of prompt and template steps, in the config dir's workflows/."""


@workflow.command("list")
@click.pass_context
def list_workflows(ctx: click.Context) -> None:
    client = client_from(ctx)
    for name in client.workflows.list():
        click.echo(f"{name:20s} {client.workflows.get(name).description}")


@workflow.command("show")
@click.argument("name")
@click.pass_context
def show(ctx: click.Context, name: str) -> None:
    """A workflow's YAML."""
    from chinwag.templates import read_file

    source = Path(client_from(ctx).workflows.get(name).source)
    click.echo(read_file(source, "Workflow"), nl=False)


@workflow.command("run")
@click.argument("name")
@click.option("-a", "--arg", "pairs", multiple=True, metavar="NAME=VALUE", help="An argument.")
@click.option("--user", help="Whose turns these are.")
@click.pass_context
def run(ctx: click.Context, name: str, pairs: tuple[str, ...], user: str | None) -> None:
    """Run a workflow: progress on stderr, each step's output on stdout."""

    def progress(step: str, what: str) -> None:
        echo_err(f"[{step}] {what}")

    result = client_from(ctx).workflows.run(
        name, parse_variables(pairs, "-a"), user=user, on_step=progress
    )
    for step in result.steps:
        if step.skipped:
            continue
        click.echo(f"## {step.name}\n")
        for output in step.outputs:
            click.echo(output.strip() + "\n")
