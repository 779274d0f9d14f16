"""The web page's sessions: cookies, and the checks that keep other sites from using them.

Signing in exchanges an API key for a random session token in an HttpOnly, SameSite=Strict
cookie (Secure over HTTPS); the store keeps only its SHA-256. A request that a cookie
authenticates and that changes something must also come from this server's own origin
(Origin, or Referer) and carry the CSRF token in a header: the token is an HMAC of the
session token, sent in a second cookie that the page's script can read, so it is bound to
the session and another site can neither read nor forge it (a signed double-submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, Response

SESSION_COOKIE = "chinwag_session"
CSRF_COOKIE = "chinwag_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def new_token() -> str:
    """A session token: 256 random bits."""
    return secrets.token_urlsafe(32)


def csrf_token(session: str) -> str:
    """The CSRF token bound to a session."""
    return hmac.new(session.encode(), b"chinwag csrf", hashlib.sha256).hexdigest()


def https(request: Request) -> bool:
    """Whether the browser reached us over HTTPS (directly, or through a TLS proxy)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def own_origin(request: Request) -> str:
    """This server's origin as the browser sees it (a proxy's X-Forwarded-Host counts)."""
    host = request.headers.get("x-forwarded-host") or request.headers.get("host", "")
    return f"{'https' if https(request) else 'http'}://{host.split(',')[0].strip().lower()}"


def _origin_of(request: Request) -> str | None:
    """The origin a browser says the request came from: Origin, else Referer's."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return origin.lower().rstrip("/")
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower()
    return "null" if origin == "null" else None


def foreign(request: Request) -> bool:
    """A state-changing request that a browser sent from another site's page."""
    if request.method in SAFE_METHODS:
        return False
    origin = _origin_of(request)
    return origin is not None and origin != own_origin(request)


def check_csrf(request: Request, session: str) -> None:
    """Refuse (403) a cookie-authenticated request that changes something unless it comes
    from this server's own page, with the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    origin = _origin_of(request)
    if origin is None or origin != own_origin(request):
        raise HTTPException(
            403,
            "A signed-in request that changes something must come from this server's own "
            "page (its Origin or Referer header is missing or another site's).",
        )
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), csrf_token(session).encode()):
        raise HTTPException(
            403,
            f"The {CSRF_HEADER} header is missing or does not match the session: reload "
            "the page (or sign in again).",
        )


def set_cookies(response: Response, request: Request, session: str, seconds: int) -> None:
    """The session cookie, and the CSRF cookie the page's script reads."""
    secure = https(request)
    response.set_cookie(
        SESSION_COOKIE, session, max_age=seconds, path="/", httponly=True,
        samesite="strict", secure=secure,
    )  # fmt: skip
    response.set_cookie(
        CSRF_COOKIE, csrf_token(session), max_age=seconds, path="/", httponly=False,
        samesite="strict", secure=secure,
    )  # fmt: skip


def clear_cookies(response: Response, request: Request) -> None:
    secure = https(request)
    for name, httponly in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", httponly=httponly, samesite="strict", secure=secure)


__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "check_csrf",
    "clear_cookies",
    "csrf_token",
    "foreign",
    "new_token",
    "set_cookies",
]
