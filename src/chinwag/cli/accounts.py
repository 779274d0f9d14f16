"""`chinwag users` and `chinwag keys`: who may use a chinwag server, and with which key."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from chinwag.cli import client_from


@click.group()
def users() -> None:
    """The users of a chinwag server (each API key acts as one)."""


@users.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May list users and everyone's usage.")
@click.pass_context
def add_user(ctx: click.Context, name: str, admin: bool) -> None:
    """Add a user (with --admin, an existing user becomes an admin)."""
    user = client_from(ctx).accounts.add_user(name, admin=admin)
    click.echo(f"{user.name}{' (admin)' if user.admin else ''}")


@users.command("list")
@click.pass_context
def list_users(ctx: click.Context) -> None:
    """Every user, and whether they are an admin."""
    for user in client_from(ctx).accounts.list_users():
        role = "admin" if user.admin else "user"
        click.echo(f"{user.name:24s} {role:6s} {_when(user.created_at)}")


@click.group()
def keys() -> None:
    """API keys: your providers' (set, delete) and a chinwag server's (create, list, revoke).

    `keys set openai` keeps the key you type for the openai provider in the system
    keyring, or else in a file only you can read; never in config.yaml. create, list and
    revoke manage the keys that clients of a chinwag server sign in with.
    """


@keys.command("create")
@click.option("--user", required=True, help="The user the key acts as.")
@click.option("--name", "label", metavar="LABEL", help="A label to tell it by.")
@click.option("--rpm", type=click.IntRange(1), help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(1), help="Tokens per minute.")
@click.option("--max-tokens-per-day", type=click.IntRange(1), help="Tokens per day (UTC).")
@click.option("--max-cost-per-day", metavar="USD", help="US dollars per day (UTC), e.g. 5.")
@click.option("--max-cost-per-month", metavar="USD", help="US dollars per calendar month.")
@click.option("--expires", metavar="DATE", help="Last day it works (YYYY-MM-DD), or a time.")
@click.pass_context
def create_key(
    ctx: click.Context, user: str, label: str | None, rpm: int | None, tpm: int | None,
    max_tokens_per_day: int | None, max_cost_per_day: str | None,
    max_cost_per_month: str | None, expires: str | None,
) -> None:  # fmt: skip
    """Make a chinwag server's key and print it, this once: only its hash is kept."""
    made = client_from(ctx).accounts.create_key(
        user, name=label, rpm=rpm, tpm=tpm, tokens_per_day=max_tokens_per_day,
        cost_per_day=max_cost_per_day, cost_per_month=max_cost_per_month, expires=expires,
    )  # fmt: skip
    click.echo(made.key)
    click.echo(
        f"Key {made.id} for {made.user}: copy it now, it is not shown again. "
        f"Revoke it with `chinwag keys revoke {made.id}`.",
        err=True,
    )


@keys.command("list")
@click.option("--user", help="Only this user's keys.")
@click.pass_context
def list_keys(ctx: click.Context, user: str | None) -> None:
    """A server's keys: id, user, label, limits and state (never the key itself)."""
    from chinwag.prices import usd

    for key in client_from(ctx).accounts.list_keys(user=user):
        limits = [
            f"{what} {value:,}"
            for what, value in (("rpm", key.rpm), ("tpm", key.tpm), ("per day", key.tokens_per_day))
            if value is not None
        ]
        limits += [
            f"{usd(value)} a {span}"
            for span, value in (("day", key.cost_per_day), ("month", key.cost_per_month))
            if value is not None
        ]
        if key.revoked_at is not None:
            state = f"revoked {_when(key.revoked_at)}"
        elif not key.active:
            state = f"expired {_when(key.expires_at)}"
        else:
            state = f"until {_when(key.expires_at)}" if key.expires_at else "active"
        click.echo(
            f"{key.id:22s} {key.prefix}… {key.user:16s} {key.name or '-':16s} "
            f"{', '.join(limits) or 'no limits':28s} {state}"
        )


@keys.command("revoke")
@click.argument("key_id", metavar="ID")
@click.pass_context
def revoke_key(ctx: click.Context, key_id: str) -> None:
    """Revoke a server's key: it fails from the next request on, on every worker."""
    key = client_from(ctx).accounts.revoke_key(key_id)
    click.echo(f"Revoked {key.id} ({key.user}).")


def _stored_key_command(name: str) -> Callable[[Callable[..., None]], click.Command]:
    """A `keys` command about a stored key: a PROVIDER, or --server URL."""

    def make(fn: Callable[..., None]) -> click.Command:
        fn = click.pass_context(fn)
        fn = click.option(
            "--server", "server_url", metavar="URL", help="A chinwag server's key instead."
        )(fn)
        return keys.command(name)(click.argument("provider", required=False)(fn))

    return make


@_stored_key_command("set")
def set_key(ctx: click.Context, provider: str | None, server_url: str | None) -> None:
    """Store a provider's API key out of plain text: typed without echo, or piped."""
    from chinwag.keystore import Secrets

    config, name = _secret_name(ctx, provider, server_url)
    if sys.stdin.isatty():
        value = click.prompt(f"API key for {provider or server_url}", hide_input=True)
    else:
        value = sys.stdin.readline()
    value = value.strip()
    if not value:
        raise click.UsageError("No key given: type it at the prompt, or pipe it on stdin.")
    where = Secrets(config.paths.config_dir).set(name, value)
    click.echo(f"Stored the key for {provider or server_url} in {where}.")
    source = config.source(name) if provider else ""
    if source.startswith(("the environment", "code")):
        click.echo(f"Note: {source} sets this key too, and wins over the stored one.", err=True)


@_stored_key_command("delete")
def delete_key(ctx: click.Context, provider: str | None, server_url: str | None) -> None:
    """Forget the provider's key that `keys set` stored."""
    from chinwag.keystore import Secrets

    config, name = _secret_name(ctx, provider, server_url)
    if Secrets(config.paths.config_dir).delete(name):
        click.echo(f"Deleted the stored key for {provider or server_url}.")
    else:
        click.echo(f"No key is stored for {provider or server_url}.")


keys.add_command(delete_key, "unset")


def _secret_name(
    ctx: click.Context, provider: str | None, server_url: str | None
) -> tuple[Any, str]:
    """The config, and the name a provider's (or a server's) key is stored under."""
    from chinwag.config import Config
    from chinwag.keystore import provider_key

    if (provider is None) == (server_url is None):
        raise click.UsageError("Name a provider (chinwag keys set openai) or --server URL.")
    config = Config(profile=(ctx.find_root().obj or {}).get("profile"))
    if server_url is not None:
        return config, server_url
    assert provider is not None
    if provider not in config.settings.providers:
        known = ", ".join(sorted(config.settings.providers)) or "none"
        raise click.UsageError(f"No provider {provider!r} is configured (configured: {known}).")
    return config, provider_key(provider)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"
