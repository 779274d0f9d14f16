"""The `chinwag` command. Subcommands load on first use, so `chinwag --help` starts fast.

Exit codes: 0 ok, 1 error, 2 usage, 130 interrupted.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any

import click

# name -> (module:attribute, one-line help shown before anything is imported)
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
    "stats": ("chinwag.cli.stats:stats", "Usage in tokens and words, per day."),
    "config": ("chinwag.cli.configure:config", "Show, get, set and edit settings."),
    "models": ("chinwag.cli.status:models", "The models of each configured provider."),
    "health": ("chinwag.cli.status:health", "The default provider and what is reachable."),
}
_GROUP_OPTIONS = {"--debug", "--profile", "--help", "-h", "--version"}


class LazyGroup(click.Group):
    """Imports a subcommand only when it runs; a bare prompt runs `ask`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, _, attr = COMMANDS[name][0].partition(":")
        command: click.Command = getattr(import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # `chinwag "prompt"` and `chinwag -b poet "prompt"` mean `chinwag ask ...`.
        index = 0
        while index < len(args) and args[index] in _GROUP_OPTIONS:
            index += 2 if args[index] == "--profile" else 1
        asked_for_help = bool({"--help", "-h", "--version"} & set(args[:index]))
        if index < len(args) and args[index] not in COMMANDS and not asked_for_help:
            args = [*args[:index], "ask", *args[index:]]
        elif index == len(args) and not asked_for_help and not sys.stdin.isatty():
            args = [*args, "ask"]  # `echo question | chinwag`
        return super().parse_args(ctx, args)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=True,
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("--profile", metavar="NAME", help="Use a profile from the config file.")
@click.version_option(package_name="chinwag", message="chinwag %(version)s")
@click.pass_context
def cli(ctx: click.Context, debug: bool, profile: str | None) -> None:
    """Talk to language models: `chinwag "a prompt"`, or `chinwag chat` for a shell.

    With no API key it answers with the small embedded model, offline.
    """
    ctx.obj = {"debug": debug, "profile": profile}
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def main(argv: list[str] | None = None) -> None:
    """The console script: one clear line for errors, tracebacks only with --debug."""
    from chinwag.cli import signals

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    signals.install()
    try:
        # Without standalone mode click returns ctx.exit()'s code instead of exiting.
        code = cli.main(args=args, prog_name="chinwag", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # usage errors: exit 2
        # One line, as for every other error, with where to read more.
        message = exc.format_message()
        message += "" if message.endswith((".", "?", "!")) else "."
        ctx = exc.ctx if isinstance(exc, click.UsageError) else None
        hint = f" See '{ctx.command_path} --help'." if ctx is not None else ""
        click.echo(f"chinwag: {message}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:  # click's word for an interrupt
        cause = exc.__cause__
        sys.exit(signals.exit_code(cause) if isinstance(cause, KeyboardInterrupt) else 130)
    except KeyboardInterrupt as interrupt:
        click.echo("chinwag: interrupted", err=True)
        sys.exit(signals.exit_code(interrupt))
    except BrokenPipeError:
        sys.exit(0)  # the reader (head, less) went away: nothing more to say
    except Exception as exc:
        if debug:
            raise
        from chinwag.errors import ChinwagError

        if isinstance(exc, ChinwagError):
            click.echo(f"chinwag: {exc}", err=True)
        else:
            click.echo(
                f"chinwag: unexpected {type(exc).__name__}: {exc} (rerun with --debug for the "
                "traceback, and please report it)",
                err=True,
            )
        sys.exit(1)


def client_from(ctx: click.Context) -> Any:
    """The sync Client for this invocation, closed when the command ends."""
    from chinwag.client import Client

    root = ctx.find_root()
    obj = root.obj or {}
    if "client" not in obj:
        obj["client"] = Client(profile=obj.get("profile"))
        root.call_on_close(obj["client"].close)
        root.obj = obj
    return obj["client"]
