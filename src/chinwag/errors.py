"""chinwag's exception tree: every failure a user can meet derives from ChinwagError.

One class per meaning a caller branches on, as in openai-python; none shadows a builtin.

ChinwagError
├── ConfigError                 a setting is missing or invalid (.key, .value)
├── InputError                  a call's arguments are invalid
│   └── ConflictError           a name or id is taken already
├── NotFoundError               no such bot, conversation or message, for this user
├── StoreError                  the database failed (.where); .partial keeps the answer
├── AccessError                 a server refused the key: none, unknown, expired, revoked
├── LimitError                  a key's limit is spent (.retry_after, .should_retry)
└── ProviderError               a model provider failed (.provider, .status_code, .body)
    ├── AuthenticationError         401, or no key
    ├── PermissionDeniedError       403
    ├── RateLimitError              429 (.retry_after)
    ├── BadRequestError             the provider refused the request (400, 404, 422...)
    ├── ProviderUnavailableError    the provider failed on its side (5xx)
    ├── ProviderTimeoutError        no answer in time (idle_timeout, timeout, deadline)
    ├── ProviderConnectionError     unreachable, or the connection dropped
    │   └── ServerConnectionError       a remote client cannot reach its chinwag server
    └── ResponseError               the answer broke the protocol

Which of them are retried is the retry policy's business (providers/retry.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chinwag.types import ErrorEvent, Reply


class ChinwagError(Exception):
    """Base of every error chinwag raises; the message says what happened and what to do."""

    # When a turn failed after its question was stored: the answer as it was stored
    # (partial or error), or, for a StoreError, as it could not be (message_id None).
    partial: Reply | None = None


class ConfigError(ChinwagError, ValueError):
    """A configuration value is missing or invalid."""

    def __init__(self, message: str, *, key: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.key = key
        self.value = value


class InputError(ChinwagError, ValueError):
    """A call's arguments are invalid (an empty prompt, a temperature out of range, ...)."""


class ConflictError(InputError):
    """A name or id is taken already (a bot's slug or uid, an imported conversation's id)."""


class NotFoundError(ChinwagError, LookupError):
    """A bot, conversation or message that was asked for does not exist for this user."""


class StoreError(ChinwagError):
    """The database failed (locked too long, full, damaged, unreachable). An answer that could
    not be stored is kept on `partial` (its message_id is None), so nothing shown is lost."""

    def __init__(self, message: str, *, where: str = "", partial: Reply | None = None) -> None:
        super().__init__(message)
        self.where = where
        self.partial = partial


class ToolError(ChinwagError):
    """A tool could not run (its MCP server stopped, or it was not allowed); the model is
    told, and the turn goes on."""


class AccessError(ChinwagError, PermissionError):
    """A chinwag server refused the request's key: none, unknown, expired or revoked (401)."""


class LimitError(ChinwagError):
    """A key's limit (requests or tokens per minute, tokens per day, a money budget per day
    or month) is spent (429). `retry_after` says when the window opens again;
    `should_retry` is False for a day or a month."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, should_retry: bool = True
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.should_retry = should_retry


class ProviderError(ChinwagError):
    """A model provider failed; `partial` holds what was answered before the failure, if any."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        body: str | None = None,
        partial: Reply | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status_code = status_code  # the provider's HTTP status, if it sent one
        self.body = body  # the start of the provider's error body, if it sent one
        self.partial = partial
        self.retry_after = retry_after  # seconds the provider asked us to wait, if it said
        self.should_retry = should_retry  # the provider's own x-should-retry verdict, if any


class AuthenticationError(ProviderError):
    """The provider rejected the credentials (401), or none were given."""


class PermissionDeniedError(ProviderError):
    """The provider knows the key but refuses it this (403)."""


class RateLimitError(ProviderError):
    """The provider is rate limiting (429); `retry_after` is how long it asked us to wait."""


class BadRequestError(ProviderError):
    """The provider refused the request as invalid (400, 404, 422, ...)."""


class ProviderUnavailableError(ProviderError):
    """The provider failed on its side (5xx)."""


class ProviderTimeoutError(ProviderError):
    """The provider did not answer within the configured time."""


class ProviderConnectionError(ProviderError):
    """The provider could not be reached, or dropped the connection."""


class ServerConnectionError(ProviderConnectionError):
    """A remote client could not reach its chinwag server (the message names the URL)."""


class ResponseError(ProviderError):
    """The provider's answer broke the protocol (malformed JSON or SSE)."""


def error_from(event: ErrorEvent) -> ChinwagError:
    """The error an ErrorEvent stands for, with `.partial` set to its reply: the original in
    this process, or one of the same class rebuilt from the event's fields."""
    if isinstance(event.original, ChinwagError):
        return event.original
    return rebuild(
        event.kind,
        event.message,
        status_code=event.status_code,
        retry_after=event.retry_after,
        partial=event.reply,
    )


def rebuild(
    kind: str,
    message: str,
    *,
    status_code: int | None = None,
    retry_after: float | None = None,
    should_retry: bool | None = None,
    partial: Reply | None = None,
) -> ChinwagError:
    """The error an ErrorEvent (or a server's error envelope) describes, by class name;
    an unknown name is a plain ChinwagError."""
    cls = _BY_NAME.get(kind, ChinwagError)
    error: ChinwagError
    if issubclass(cls, ProviderError):
        error = cls(
            message,
            status_code=status_code,
            retry_after=retry_after,
            should_retry=should_retry,
            partial=partial,
        )
    elif issubclass(cls, LimitError):
        error = cls(message, retry_after=retry_after, should_retry=should_retry is not False)
    else:
        error = cls(message)
    error.partial = partial
    return error


def _subclasses(cls: type[ChinwagError]) -> list[type[ChinwagError]]:
    return [cls, *(s for sub in cls.__subclasses__() for s in _subclasses(sub))]


_BY_NAME = {cls.__name__: cls for cls in _subclasses(ChinwagError)}
