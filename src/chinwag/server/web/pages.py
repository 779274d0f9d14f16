"""The page routes (chat, usage, sign in) and the static files they load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from chinwag.errors import AccessError
from chinwag.server import sessions
from chinwag.server.auth import Caller, caller
from chinwag.version import __version__

HERE = Path(__file__).parent
_templates = Jinja2Templates(directory=HERE / "templates")
# The page loads nothing from elsewhere, and runs no script it did not ship: even markup
# that got past the sanitizer could not run or phone home.
_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


async def _viewer(request: Request) -> Caller | None:
    """Who opens a page: a session, or the owner of a server without keys; None otherwise."""
    try:
        return await caller(request, None, None, request.cookies.get(sessions.SESSION_COOKIE))
    except AccessError:
        return None


def _page(request: Request, template: str, **context: Any) -> Response:
    return _templates.TemplateResponse(
        request, template, {"version": __version__, **context}, headers=_HEADERS
    )


async def chat_page(request: Request) -> Response:
    """The chat: conversations on the side, the open one beside them."""
    who = await _viewer(request)
    if who is None:
        return RedirectResponse("/signin", status_code=303)
    return _page(request, "chat.html", page="chat", who=who)


async def usage_page(request: Request) -> Response:
    """Tokens and words per day, and totals per bot."""
    who = await _viewer(request)
    if who is None:
        return RedirectResponse("/signin", status_code=303)
    return _page(request, "usage.html", page="usage", who=who)


async def signin_page(request: Request) -> Response:
    """Sign in with an API key (a server without keys opens the chat straight away)."""
    if await _viewer(request) is not None:
        return RedirectResponse("/", status_code=303)
    reason = None
    try:
        await caller(request, None, None, None)
    except AccessError as exc:
        reason = None if getattr(request.app.state, "has_keys", False) else str(exc)
    return _page(request, "signin.html", page="signin", who=None, reason=reason)


def mount(app: FastAPI) -> None:
    """Add the pages and their static files to the app."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for path, endpoint in (("/", chat_page), ("/usage", usage_page), ("/signin", signin_page)):
        app.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)


__all__ = ["mount"]
