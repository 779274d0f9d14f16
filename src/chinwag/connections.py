"""Connection pools of chinwag's HTTP clients: how many connections, and the open files
they need."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable
from typing import TypeVar

import httpx

from chinwag.config import ProviderSettings

# openai-python's pool: this many streams at once share one client; more wait for a slot.
MAX_CONNECTIONS: int = ProviderSettings.model_fields["max_connections"].default
MAX_KEEPALIVE = 100
# Open files beyond the pool's sockets: the store, its journal, logs, a server's own side.
FILES_HEADROOM = 1024

E = TypeVar("E", bound=BaseException)


def pool_limits(max_connections: int = MAX_CONNECTIONS) -> httpx.Limits:
    """httpx limits for a pool of `max_connections`, with the open files it may need."""
    ensure_open_files(max_connections + FILES_HEADROOM)
    return httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=min(MAX_KEEPALIVE, max_connections),
    )


def ensure_open_files(wanted: int) -> None:
    """Raise this process's soft limit on open files to `wanted`, as far as the hard limit
    allows; never lower it. A soft limit of 1024, common on Linux, ends a thousand
    concurrent streams with "Too many open files" although the hard limit allows more."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):  # e.g. macOS past its OPEN_MAX
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def caused_by(
    exc: BaseException, kind: type[E], where: Callable[[E], bool] = lambda _: True
) -> E | None:
    """The first `kind` in the exception's chain for which `where` holds (httpx wraps
    what the socket raised, and anyio wraps that again)."""
    seen: BaseException | None = exc
    for _ in range(10):  # a chain is short; a cycle must not loop forever
        if seen is None:
            return None
        if isinstance(seen, kind) and where(seen):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def out_of_files(exc: BaseException) -> str | None:
    """What to do when a connection failed for want of file descriptors, else None."""
    if caused_by(exc, OSError, lambda e: e.errno in (errno.EMFILE, errno.ENFILE)) is None:
        return None
    try:
        import resource

        limit = f" ({resource.getrlimit(resource.RLIMIT_NOFILE)[0]})"
    except ImportError:
        limit = ""
    return (
        f"This process ran out of open files{limit}: every connection is one. Raise the "
        "limit (`ulimit -n`; the hard limit, `ulimit -Hn`, is the system's to raise) or "
        "lower max_connections."
    )


__all__ = ["MAX_CONNECTIONS", "caused_by", "ensure_open_files", "out_of_files", "pool_limits"]
