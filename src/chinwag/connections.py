"""Connection pools of chinwag's HTTP clients: how many connections, and the open files
they need."""

from __future__ import annotations

import contextlib

import httpx

from chinwag.config import ProviderSettings

# openai-python's pool: this many streams at once share one client; more wait for a slot.
MAX_CONNECTIONS: int = ProviderSettings.model_fields["max_connections"].default
MAX_KEEPALIVE = 100
# Open files beyond the pool's sockets: the store, its journal, logs, a server's own side.
FILES_HEADROOM = 1024


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


__all__ = ["MAX_CONNECTIONS", "ensure_open_files", "pool_limits"]
