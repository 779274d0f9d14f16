"""chinwag's exception tree: every failure a user can meet derives from ChinwagError.

ChinwagError
├── ConfigError
├── InputError
├── NotFoundError
├── StoreError              (the database failed; .partial keeps an unstored answer)
└── ProviderError
    ├── AuthenticationError
    ├── RateLimitError          (.retry_after)
    ├── TimeoutError
    ├── ConnectionError
    ├── BadRequestError
    ├── ServerError
    └── ResponseError           (the server broke the protocol)
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chinwag.types import Reply


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


class NotFoundError(ChinwagError, LookupError):
    """A bot, conversation or message that was asked for does not exist for this user."""


class StoreError(ChinwagError):
    """The database failed (locked too long, full, damaged, unreachable). An answer that could
    not be stored is kept on `partial` (its message_id is None), so nothing shown is lost."""

    def __init__(self, message: str, *, where: str = "", partial: Reply | None = None) -> None:
        super().__init__(message)
        self.where = where
        self.partial = partial


class ProviderError(ChinwagError):
    """A model provider failed; `partial` holds what was answered before the failure, if any."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        partial: Reply | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status_code = status_code
        self.partial = partial
        self.retry_after = retry_after  # seconds the server asked us to wait, if it said
        self.should_retry = should_retry  # the server's own x-should-retry verdict, if any

    @property
    def retryable(self) -> bool:
        """Whether openai-python's policy retries this failure."""
        return False


class AuthenticationError(ProviderError):
    """The provider rejected the credentials (401/403) or none were given."""


class RateLimitError(ProviderError):
    """The provider is rate limiting (429); `retry_after` is how long it asked us to wait."""

    @property
    def retryable(self) -> bool:
        return True


# Named like the builtins on purpose (as httpx does); they subclass them too.
class TimeoutError(ProviderError, builtins.TimeoutError):
    """The provider did not answer within the configured timeout."""

    @property
    def retryable(self) -> bool:
        return True


class ConnectionError(ProviderError, builtins.ConnectionError):
    """The provider could not be reached, or dropped the connection."""

    @property
    def retryable(self) -> bool:
        return True


class BadRequestError(ProviderError):
    """The provider refused the request as invalid (400, 404, 422, ...): retrying will not help."""

    @property
    def retryable(self) -> bool:
        # 408 (request timeout) and 409 (conflict) are client codes openai-python retries.
        return self.status_code in (408, 409)


class ServerError(ProviderError):
    """The provider failed on its side (5xx)."""

    @property
    def retryable(self) -> bool:
        return True


class ResponseError(ProviderError):
    """The provider's answer broke the protocol (malformed JSON or SSE)."""


def rebuild(
    kind: str,
    message: str,
    *,
    status_code: int | None = None,
    retry_after: float | None = None,
    partial: Reply | None = None,
) -> ChinwagError:
    """The error an ErrorEvent (or a server's error envelope) describes, by class name;
    an unknown name is a plain ChinwagError."""
    cls = _BY_NAME.get(kind, ChinwagError)
    error: ChinwagError
    if issubclass(cls, ProviderError):
        error = cls(message, status_code=status_code, retry_after=retry_after, partial=partial)
    else:
        error = cls(message)
        error.partial = partial
    return error


def _subclasses(cls: type[ChinwagError]) -> list[type[ChinwagError]]:
    return [cls, *(s for sub in cls.__subclasses__() for s in _subclasses(sub))]


_BY_NAME = {cls.__name__: cls for cls in _subclasses(ChinwagError)}
