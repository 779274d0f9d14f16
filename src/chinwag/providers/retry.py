"""openai-python's retry policy, on tenacity.

Retried: 408, 409, 429, 5xx, timeouts and connection errors, at most `max_retries` times.
The wait honours `retry-after-ms` / `Retry-After` (seconds or an HTTP date) when it is
between 0 and 60 seconds, else backs off 0.5 s * 2^n up to 8 s with up to 25% jitter.
`x-should-retry: true|false` from the server overrides the status code's verdict.
Only the opening of a request is retried, never a stream after its first byte.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from chinwag.errors import ProviderError

INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0

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


def should_retry(exc: BaseException) -> bool:
    if not isinstance(exc, ProviderError):
        return False
    if exc.should_retry is not None:
        return exc.should_retry
    return exc.retryable


def backoff(retry_state: RetryCallState) -> float:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None and 0 < retry_after <= 60:
        return float(retry_after)
    retries_done = retry_state.attempt_number - 1
    delay = min(INITIAL_RETRY_DELAY * 2.0**retries_done, MAX_RETRY_DELAY)
    return delay * (1 - 0.25 * random.random())


async def with_retries(max_retries: int, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt`, retrying retryable provider errors by openai-python's policy."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(max_retries + 1),
        retry=retry_if_exception(should_retry),
        wait=backoff,
        reraise=True,
    )
    result: T = await retrying(attempt)
    return result
