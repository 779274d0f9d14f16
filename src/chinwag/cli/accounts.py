"""`chinwag users` and `chinwag keys`: who may use a chinwag server, and with which key."""

from __future__ import annotations

from datetime import datetime

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
    """API keys of a chinwag server: create, list, revoke."""


@keys.command("create")
@click.option("--user", required=True, help="The user the key acts as.")
@click.option("--name", "label", metavar="LABEL", help="A label to tell it by.")
@click.option("--rpm", type=click.IntRange(1), help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(1), help="Tokens per minute.")
@click.option("--max-tokens-per-day", type=click.IntRange(1), help="Tokens per day (UTC).")
@click.option("--expires", metavar="DATE", help="Last day it works (YYYY-MM-DD), or a time.")
@click.pass_context
def create_key(
    ctx: click.Context, user: str, label: str | None, rpm: int | None, tpm: int | None,
    max_tokens_per_day: int | None, expires: str | None,
) -> None:  # fmt: skip
    """Make a key and print it, this once: only its hash is kept."""
    made = client_from(ctx).accounts.create_key(
        user, name=label, rpm=rpm, tpm=tpm, tokens_per_day=max_tokens_per_day, expires=expires
    )
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
    """Every key: id, user, label, limits and state (never the key itself)."""
    for key in client_from(ctx).accounts.list_keys(user=user):
        limits = ", ".join(
            f"{what} {value:,}"
            for what, value in (("rpm", key.rpm), ("tpm", key.tpm), ("per day", key.tokens_per_day))
            if value is not None
        )
        if key.revoked_at is not None:
            state = f"revoked {_when(key.revoked_at)}"
        elif not key.active:
            state = f"expired {_when(key.expires_at)}"
        else:
            state = f"until {_when(key.expires_at)}" if key.expires_at else "active"
        click.echo(
            f"{key.id:22s} {key.prefix}… {key.user:16s} {key.name or '-':16s} "
            f"{limits or 'no limits':28s} {state}"
        )


@keys.command("revoke")
@click.argument("key_id", metavar="ID")
@click.pass_context
def revoke_key(ctx: click.Context, key_id: str) -> None:
    """Revoke a key: it fails from the next request on, on every worker."""
    key = client_from(ctx).accounts.revoke_key(key_id)
    click.echo(f"Revoked {key.id} ({key.user}).")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"
