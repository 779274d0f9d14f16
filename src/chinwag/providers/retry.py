"""openai-python's retry policy, on tenacity.

Retried: 408, 409, 429, 5xx, timeouts and connection errors, at most `max_retries` times.
The wait honours `retry-after-ms` / `Retry-After` (seconds or an HTTP date) when it is
between 0 and 60 seconds, else backs off 0.5 s * 2^n up to 8 s with up to 25% jitter.
A server that asks for a longer wait is not retried at all: the error carries the wait.
`x-should-retry: true|false` from the server overrides the status code's verdict.
No retry starts when its wait would reach the deadline; the last error is raised instead.
Only the opening of a request is retried, never a stream after its first byte.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import TypeVar

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base

from chinwag.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
)

INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 60.0  # a server asking for a longer wait gets no retry

T = TypeVar("T")


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait, if it said so in a form we understand."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return float(raw_ms) / 1000
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(raw).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


# openai-python retries these, and 408 (request timeout) and 409 (conflict) refusals.
_RETRIED = (
    RateLimitError,
    ProviderUnavailableError,
    ProviderTimeoutError,
    ProviderConnectionError,
)
_RETRIED_STATUS = frozenset({408, 409})


def should_retry(exc: BaseException) -> bool:
    if not isinstance(exc, ProviderError):
        return False
    if exc.retry_after is not None and exc.retry_after > MAX_RETRY_AFTER:
        return False  # waiting that long is the caller's decision, not ours
    if exc.should_retry is not None:
        return exc.should_retry
    return isinstance(exc, _RETRIED) or exc.status_code in _RETRIED_STATUS


def backoff(retry_state: RetryCallState) -> float:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None and 0 < retry_after <= MAX_RETRY_AFTER:
        return float(retry_after)
    retries_done = retry_state.attempt_number - 1
    delay = min(INITIAL_RETRY_DELAY * 2.0**retries_done, MAX_RETRY_DELAY)
    return delay * (1 - 0.25 * random.random())


class _StopBefore(stop_base):
    """Stop when the next attempt would start at or after `deadline` (anyio's clock)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return anyio.current_time() + (retry_state.upcoming_sleep or 0) >= self.deadline


async def with_retries(
    max_retries: int,
    attempt: Callable[[], Awaitable[T]],
    deadline: float | None = None,
    retryable: Callable[[BaseException], bool] = should_retry,
) -> T:
    """Run `attempt`, retrying retryable provider errors by openai-python's policy.

    `deadline` (anyio's clock): no retry starts whose wait would reach it. `retryable`
    narrows which errors are tried again (a request that may have been acted on is not).
    """
    # Most calls succeed at once: the first attempt runs without tenacity's machinery, and
    # only a retryable failure enters it, replayed as its first attempt (same policy).
    try:
        return await attempt()
    except BaseException as exc:
        if max_retries <= 0 or not retryable(exc):
            raise
        failed: BaseException | None = exc

    async def again() -> T:
        nonlocal failed
        if failed is not None:
            exc, failed = failed, None
            raise exc
        return await attempt()

    stop: stop_base = stop_after_attempt(max_retries + 1)
    if deadline is not None:
        stop = stop | _StopBefore(deadline)
    retrying = AsyncRetrying(
        stop=stop,
        retry=retry_if_exception(retryable),
        wait=backoff,
        reraise=True,
    )
    result: T = await retrying(again)
    return result
