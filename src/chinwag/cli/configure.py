"""`chinwag config`: show, get, set, path, edit."""

from __future__ import annotations

import json

import click

from chinwag.cli import open_in_editor


@click.group()
def config() -> None:
    """Settings: defaults < config file < environment (CHINWAG_*)."""


@config.command("show")
@click.pass_context
def show(ctx: click.Context) -> None:
    """Every setting in effect, API keys masked."""
    import yaml

    from chinwag.config import Config

    settings = Config(profile=(ctx.find_root().obj or {}).get("profile"))
    click.echo(yaml.safe_dump(settings.shown(), sort_keys=False), nl=False)


@config.command("get")
@click.argument("key")
@click.pass_context
def get(ctx: click.Context, key: str) -> None:
    """One setting, by dotted key (e.g. providers.openai.base_url)."""

    from chinwag.config import Config

    settings = Config(profile=(ctx.find_root().obj or {}).get("profile"))
    settings.get(key)  # an unknown key is an error that says so
    value = settings.get_shown(key)
    click.echo(value if isinstance(value, str) else json.dumps(value))


@config.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("value")
def set_(key: str, value: str) -> None:
    """Write a setting to the config file; VALUE is read as YAML (numbers, true, lists).

    A name with dots goes in double quotes: 'models."gpt-4.1".system_prompt'.
    """
    from chinwag.cli.options import yaml_value
    from chinwag.config import Config

    settings = Config()
    settings.save(key, yaml_value(value, value, "VALUE"))
    click.echo(f"{key} set in {settings.file}")


@config.command("path")
def path() -> None:
    """Where chinwag keeps its files."""
    from chinwag.config import Config

    settings = Config()
    click.echo(f"config file: {settings.file}")
    click.echo(f"data:        {settings.paths.data_dir}")
    click.echo(f"cache:       {settings.paths.cache_dir}")


@config.command("edit")
def edit() -> None:
    """Open the config file in $EDITOR (or $VISUAL)."""
    from chinwag.config import Config

    settings = Config()
    settings.file.parent.mkdir(parents=True, exist_ok=True)
    settings.file.touch()
    open_in_editor(settings.file)
    Config()  # read it back: a mistake is reported now, naming the key
    click.echo(f"{settings.file} is valid.")
