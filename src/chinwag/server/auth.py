"""Who is calling: one function for every header that may carry a key."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request


@dataclass(frozen=True, slots=True)
class Caller:
    """The user a request acts for; nothing in the request itself can widen it."""

    user: str
    admin: bool


async def caller(request: Request) -> Caller:
    """The caller of a request. A server on loopback with no keys is its owner's alone:
    every request acts for the configured user."""
    config = request.app.state.config
    return Caller(user=config.settings.user, admin=True)


__all__ = ["Caller", "caller"]
