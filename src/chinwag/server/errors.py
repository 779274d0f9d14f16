"""Errors as OpenAI's envelope: `{"error": {"message", "type", "param", "code"}}`, with
OpenAI's status codes. `code` names the chinwag error class, so a chinwag client can raise
the same exception the engine raised; `type` is OpenAI's word for it."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from starlette.responses import JSONResponse

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


# The envelope as the OpenAPI document describes every error answer.
ENVELOPE_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string", "description": "What went wrong, and what to do"},
                "type": {"type": "string", "description": "OpenAI's word for the kind"},
                "param": {"type": ["string", "null"], "description": "The field at fault"},
                "code": {"type": "string", "description": "chinwag's error class"},
            },
        }
    },
}


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


def response(exc: Exception) -> JSONResponse:
    """Any exception a request ended with, as its answer in the envelope: chinwag's errors
    by their class, a body that failed validation as 400 (never FastAPI's 422), HTTP errors
    by their status, and anything else as a 500 that names nothing of the server (the
    server's error middleware logs it)."""
    from fastapi.exceptions import RequestValidationError
    from pydantic import ValidationError
    from starlette.exceptions import HTTPException

    if isinstance(exc, ChinwagError):
        status, body, headers = of(exc)
        return JSONResponse(body, status_code=status, headers=headers)
    if isinstance(exc, RequestValidationError | ValidationError):
        return JSONResponse(_invalid(exc.errors()), status_code=400)
    if isinstance(exc, HTTPException):
        kind, code = _HTTP.get(exc.status_code, ("invalid_request_error", "Error"))
        message = str(exc.detail)
        if exc.status_code == 400:  # FastAPI's only one: a body json.loads could not read
            message = _UNREADABLE
        body = envelope(message, kind, code)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
    body = envelope(
        "The server failed unexpectedly; the error is in its log.", "server_error", "Error"
    )
    return JSONResponse(body, status_code=500)


_UNREADABLE = "The body is not readable JSON: send UTF-8 JSON, nested less deeply."
_HTTP = {
    400: ("invalid_request_error", "InputError"),
    401: ("authentication_error", "AccessError"),
    403: ("permission_error", "PermissionDeniedError"),
    404: ("not_found_error", "NotFoundError"),
    405: ("invalid_request_error", "MethodNotAllowed"),
}


def _invalid(problems: Sequence[Any]) -> dict[str, Any]:
    """The first problem of a body that failed validation, named by where it is."""
    first = problems[0] if problems else {}
    if first.get("type") == "json_invalid":
        return envelope(_UNREADABLE, "invalid_request_error", "InputError")
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    message = f"{where}: {first.get('msg', 'invalid request')}" if where else "Invalid request."
    return envelope(message, "invalid_request_error", "InputError", where or None)


def sse_error(error: ChinwagError) -> bytes:
    """A failure after the first streamed byte: one error frame (then the caller sends
    `[DONE]`)."""
    _, body, _ = of(error)
    return b"data: " + json.dumps(body).encode() + b"\n\n"


__all__ = ["envelope", "of", "response", "sse_error", "status_of"]
