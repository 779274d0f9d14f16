"""The `chinwag` command. Its commands come from plugins (chinwag's own are registered by
chinwag.default_plugins) and load on first use, so `chinwag --help` starts fast.

What is not a command is a prompt for `ask`: `chinwag "a prompt"`, `chinwag -b poet
"a prompt"`, `echo question | chinwag`. `--profile NAME` goes before the command or
after it, on every command. Exit codes: 0 ok, 1 error, 2 usage, 130 interrupted.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any

import click

from chinwag import plugins

DEFAULT_COMMAND = "ask"
_PROFILE_HELP = "Use a profile from the config file."


class LazyCommand(click.Command):
    """A command known by its name and help until it runs: then its module is imported."""

    def __init__(self, name: str, target: str, short_help: str) -> None:
        super().__init__(name, short_help=short_help)
        self.target = target  # "module:attribute"

    def load(self) -> click.Command:
        module, _, attr = self.target.partition(":")
        command: click.Command = getattr(import_module(module), attr)
        return command


def _set_profile(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_root().ensure_object(dict)["profile"] = value


def _with_profile(command: click.Command) -> click.Command:
    """`--profile NAME` after the command too (`chinwag health --profile work`), in groups
    and their subcommands, unless the command has a --profile of its own."""
    if not any(param.name == "profile" for param in command.params):
        option = click.Option(
            ["--profile"], metavar="NAME", expose_value=False, callback=_set_profile,
            help=_PROFILE_HELP,
        )  # fmt: skip
        command.params.append(option)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_profile(sub)
    return command


class ChinwagGroup(click.Group):
    """Commands from the `register_commands` plugin hook; a prompt runs `ask`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(plugins.registered("register_commands"))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = plugins.find("register_commands", name)
        if found is None:
            return None
        command: click.Command = found.value
        if isinstance(command, LazyCommand):
            command = command.load()
        return _with_profile(command)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # Unknown options reach here too (ignore_unknown_options): `-b poet "hi"` is ask's.
        # An option or words with spaces are never a command: they load no plugin.
        if not plugins.may_name_command(args[0]) or self.get_command(ctx, args[0]) is None:
            args = [DEFAULT_COMMAND, *args]
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = [
            (name, found.value.get_short_help_str(limit))
            for name, found in plugins.registered("register_commands").items()
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
        failed = plugins.see_broken("register_commands").removeprefix("; ")
        if failed:
            formatter.write_paragraph()
            formatter.write_text(f"Some plugins did not load; {failed}.")


@click.group(
    cls=ChinwagGroup,
    context_settings={"help_option_names": ["-h", "--help"], "ignore_unknown_options": True},
    invoke_without_command=True,
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("--profile", metavar="NAME", help=_PROFILE_HELP)
@click.option(
    "--server",
    metavar="URL",
    help="Talk to this chinwag server (else CHINWAG_URL); its key from CHINWAG_API_KEY.",
)
@click.version_option(package_name="chinwag", message="chinwag %(version)s")
@click.pass_context
def cli(ctx: click.Context, debug: bool, profile: str | None, server: str | None) -> None:
    """Talk to language models: `chinwag "a prompt"`, or `chinwag chat` for a shell.

    With no API key it answers with the small embedded model, offline.
    """
    ctx.obj = {"debug": debug, "profile": profile, "server": server}
    if ctx.invoked_subcommand is not None:
        return
    if sys.stdin.isatty():
        click.echo(ctx.get_help())
    else:  # `echo question | chinwag`
        ask = cli.get_command(ctx, DEFAULT_COMMAND)
        assert ask is not None
        ctx.invoke(ask)


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
        from chinwag.errors import ChinwagError
        from chinwag.keystore import mask

        if debug:  # the traceback, with every secret in it masked
            import traceback

            click.echo(mask("".join(traceback.format_exception(exc))), err=True, nl=False)
        elif isinstance(exc, ChinwagError):
            click.echo(mask(f"chinwag: {exc}"), err=True)
        else:
            click.echo(
                mask(
                    f"chinwag: unexpected {type(exc).__name__}: {exc} (rerun with --debug for "
                    "the traceback, and please report it)"
                ),
                err=True,
            )
        sys.exit(1)


def client_from(ctx: click.Context) -> Any:
    """The sync Client for this invocation, closed when the command ends."""
    from chinwag.client.sync import Client

    root = ctx.find_root()
    obj = root.obj or {}
    if "client" not in obj:
        from chinwag.config import Config

        config = Config(profile=obj.get("profile"))
        url = obj.get("server") or config.settings.server.url
        key = None
        if url and config.settings.server.api_key is None:
            key = _keyring_key(config, url)
        obj["client"] = Client(config, base_url=url, api_key=key)
        root.call_on_close(obj["client"].close)
        root.obj = obj
    return obj["client"]


def _keyring_key(config: Any, url: str) -> str | None:
    """A server's key as `chinwag keys set --server URL` stored it, or as put in the system
    keyring by hand (service "chinwag", the URL as the name)."""
    from chinwag.keystore import Secrets

    found: str | None = Secrets(config.paths.config_dir).get(url, keyring=True)
    return found


def open_in_editor(path: Any) -> None:
    """Open a file in $VISUAL, $EDITOR or vi, and wait until the editor is closed."""
    import os
    import shlex
    import subprocess

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        subprocess.run([*shlex.split(editor), str(path)], check=False)
    except OSError as exc:
        raise click.ClickException(
            f"Cannot start the editor {editor!r} ({exc.strerror}): set $EDITOR to one you have."
        ) from None
