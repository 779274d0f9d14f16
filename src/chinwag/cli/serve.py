"""`chinwag serve`: the HTTP server (needs `pip install 'chinwag[server]'`)."""

from __future__ import annotations

import ipaddress
import os

import click

from chinwag.config import Config


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--host", help="The address to listen on (default: server.host, 127.0.0.1).")
@click.option("--port", type=int, help="The port (default: server.port, 8000).")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True,
    help="Worker processes; more than one needs PostgreSQL (store.url).",
)  # fmt: skip
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int) -> None:
    """Serve the OpenAI API (/v1), chinwag's API (/api/v1) and the docs (/docs)."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise click.ClickException(
            "The server needs its extra: pip install 'chinwag[server]'."
        ) from None
    profile = (ctx.find_root().obj or {}).get("profile")
    config = Config(profile=profile)
    config.set("server.url", None)  # a server runs the engine itself; the URL is for clients
    settings = config.settings.server
    host = host or settings.host
    port = port or settings.port
    if not is_loopback(host) and not _has_keys(config):
        raise click.UsageError(
            f"Serving on {host} would open it to the network, and no API key exists: "
            "create one with `chinwag keys create --user NAME` first."
        )
    if workers > 1 and not config.store_url.startswith(("postgresql", "postgres")):
        raise click.UsageError(
            f"--workers {workers} needs PostgreSQL: set store.url (a SQLite file takes one "
            "writer process), or serve with one worker."
        )
    if profile:
        os.environ["CHINWAG_PROFILE"] = profile  # the workers read their config themselves
    click.echo(f"chinwag serving on http://{host}:{port} (Ctrl-C or SIGTERM to stop)", err=True)
    uvicorn.run(
        "chinwag.server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        timeout_graceful_shutdown=settings.drain,
        # Longer than clients keep idle connections (httpx: 5 s, uvicorn's own default):
        # a server closing one as a client reuses it is a request lost to a ReadError.
        timeout_keep_alive=settings.keep_alive,
    )


def _has_keys(config: Config) -> bool:
    from chinwag.client.sync import Client

    with Client(config) as client:
        return any(key.active for key in client.accounts.list_keys())
