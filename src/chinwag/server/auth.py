"""Who is calling: one function for every header that may carry a key.

`Authorization: Bearer KEY`, `x-api-key: KEY` and the web page's session cookie go through
the same check, so no route can be reached by a path that skips it; a session acts as the
key it was signed in with, and a cookie-authenticated change must pass the CSRF checks.
The key's row is read on every request: a revoked key (and every session signed in with
it) fails on the next request, on every worker. A server that never had a key answers
on loopback only, as its owner (the configured user), whatever key it is sent, as a
local Ollama does.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from chinwag.accounts import digest
from chinwag.client.aio import AsyncClient
from chinwag.errors import AccessError
from chinwag.server import sessions
from chinwag.store.accounts import AccountStore, KeyHolder

_bearer = HTTPBearer(auto_error=False, description="An API key: `chinwag keys create`.")
_header = APIKeyHeader(name="x-api-key", auto_error=False, description="The same key.")
_cookie = APIKeyCookie(
    name=sessions.SESSION_COOKIE, auto_error=False, description="A session of the web page."
)


@dataclass(frozen=True, slots=True)
class Caller:
    """The user a request acts for; nothing in the request itself can widen it."""

    user: str
    admin: bool
    holder: KeyHolder | None = None  # None: the owner, on a server without keys
    session: str | None = None  # the session token, when the cookie authenticated it


async def tables(request: Request) -> AccountStore:
    client: AsyncClient = request.app.state.client
    return AccountStore(await client._engine.store())


async def caller(
    request: Request,
    # Declared for the OpenAPI document; the keys are read from every header, repeated too.
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Caller:
    """The caller of a request, from its key (either header) or session cookie, or a 401."""
    state = request.app.state
    # Keys are revoked, never deleted: once one exists, this server needs keys for good.
    if not getattr(state, "has_keys", False):
        state.has_keys = await (await tables(request)).any_key()
        if not state.has_keys:
            return _owner(request)
    given = _presented(request)
    if len(given) > 1:
        raise AccessError("The request carries two different keys: send one.")
    if given:
        key = given.pop()
        found = await (await tables(request)).holder(digest(key))
        if found is None or not hmac.compare_digest(found.digest, digest(key)):
            raise AccessError("The API key is not valid: check it, or create one with "
                              "`chinwag keys create --user NAME`.")  # fmt: skip
        return Caller(user=found.user, admin=found.admin, holder=_usable(found))
    if cookie:
        found = await (await tables(request)).session(digest(cookie), datetime.now(UTC))
        if found is None or not hmac.compare_digest(found.digest, digest(cookie)):
            raise AccessError("The session has ended (signed out, or expired): sign in again.")
        sessions.check_csrf(request, cookie)
        return Caller(user=found.user, admin=found.admin, holder=_usable(found), session=cookie)
    raise AccessError("No API key: send it as `Authorization: Bearer KEY` (or `x-api-key: KEY`).")


def _addressed_here(host: str) -> bool:
    """Whether a Host header names this machine: localhost (or a name under it, as RFC
    6761 reserves), or a loopback address, with any port."""
    name = host.strip().lower()
    if name.startswith("["):  # [::1]:8000
        name = name[1 : name.find("]")] if "]" in name else ""
    elif name.count(":") == 1:  # host:port
        name = name.partition(":")[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _usable(found: KeyHolder) -> KeyHolder:
    """The key, unless it was revoked or has expired (its sessions end with it)."""
    if found.revoked_at is not None:
        raise AccessError("The API key was revoked: ask for a new one.")
    if found.expires_at is not None and found.expires_at <= datetime.now(UTC):
        raise AccessError(f"The API key expired on {found.expires_at:%Y-%m-%d %H:%M} UTC.")
    return found


def _presented(request: Request) -> set[str]:
    """Every key the request carries: a second header (or a repeated one) with another
    key makes the request ambiguous, so it is refused rather than read by its first."""
    found = {v.strip() for v in request.headers.getlist("x-api-key") if v.strip()}
    for value in request.headers.getlist("authorization"):
        scheme, _, credentials = value.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            found.add(credentials.strip())
    return found


def _owner(request: Request) -> Caller:
    """A server that never had a key: its owner, whatever key a client sends (SDKs insist
    on one), but only from this machine."""
    host = request.client.host if request.client else ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        raise AccessError(
            "This server has no API keys yet, so it answers only on loopback: create one "
            "with `chinwag keys create --user NAME`."
        )
    host = request.headers.get("host", "")
    if not _addressed_here(host):
        # DNS rebinding: another site's name, pointed at 127.0.0.1, lets that site's page
        # reach this server from the owner's browser; the Host header still names it.
        raise AccessError(
            f"This server has no API keys yet, so it answers only requests addressed to this "
            f"machine (localhost, 127.0.0.1, [::1]), not to {host[:80]!r}: call it by one of "
            "those names, or create a key with `chinwag keys create --user NAME`."
        )
    if sessions.foreign(request):
        # No key to steal, but another site's page could still act as the owner.
        raise HTTPException(
            403, "This server answers changes only from its own page, not another site's."
        )
    return Caller(user=request.app.state.config.settings.user, admin=True)


__all__ = ["Caller", "caller", "tables"]
