"""Errors as OpenAI's envelope: `{"error": {"message", "type", "param", "code"}}`, with
OpenAI's status codes. `code` names the chinwag error class, so a chinwag client can raise
the same exception the engine raised; `type` is OpenAI's word for it."""

from __future__ import annotations

import json
import logging
from typing import Any

from chinwag.errors import (
    AccessError,
    AuthenticationError,
    BadRequestError,
    ChinwagError,
    ConfigError,
    ConflictError,
    InputError,
    LimitError,
    NotFoundError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    StoreError,
)

log = logging.getLogger("chinwag.server")

# Most specific first: the first class an error is an instance of decides.
_STATUS: list[tuple[type[ChinwagError], int, str]] = [
    (ConflictError, 409, "conflict_error"),
    (InputError, 400, "invalid_request_error"),
    (NotFoundError, 404, "not_found_error"),
    (AccessError, 401, "authentication_error"),
    (LimitError, 429, "rate_limit_error"),
    (RateLimitError, 429, "rate_limit_error"),
    (BadRequestError, 400, "invalid_request_error"),  # the provider refused the request
    (ProviderTimeoutError, 504, "timeout_error"),
    (ProviderConnectionError, 502, "upstream_error"),
    (AuthenticationError, 502, "upstream_error"),  # the provider refused the server's key
    (PermissionDeniedError, 502, "upstream_error"),
    (ProviderError, 502, "upstream_error"),
    (StoreError, 503, "server_error"),
    (ConfigError, 500, "server_error"),
    (ChinwagError, 500, "server_error"),
]


def status_of(error: ChinwagError) -> tuple[int, str]:
    """The HTTP status and OpenAI error type for a chinwag error."""
    return next((status, kind) for cls, status, kind in _STATUS if isinstance(error, cls))


def envelope(message: str, kind: str, code: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def of(error: ChinwagError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, body and headers for a chinwag error."""
    status, kind = status_of(error)
    message = str(error)
    if status >= 500 and not isinstance(error, ProviderError):
        # The server's own failures name its database, files and settings: the operator
        # reads them in the log, the client learns only what failed.
        log.warning("a request failed: %s", message)
        message = (
            f"The server could not do this ({type(error).__name__}): try again later; "
            "the server's log says why."
        )
    body = envelope(message, kind, type(error).__name__)
    headers: dict[str, str] = {}
    retry_after = getattr(error, "retry_after", None)
    if isinstance(error, (RateLimitError, LimitError)) and retry_after is not None:
        headers["retry-after"] = str(max(1, round(retry_after)))
        body["error"]["retry_after"] = retry_after
    if getattr(error, "should_retry", None) is False:
        headers["x-should-retry"] = "false"
    if error.partial is not None:  # the answer as stored, so a remote client keeps it too
        body["error"]["partial"] = error.partial.model_dump(mode="json")
    return status, body, headers


def sse_error(error: ChinwagError) -> bytes:
    """A failure after the first streamed byte: one error frame (then the caller sends
    `[DONE]`)."""
    _, body, _ = of(error)
    return b"data: " + json.dumps(body).encode() + b"\n\n"


__all__ = ["envelope", "of", "sse_error", "status_of"]
