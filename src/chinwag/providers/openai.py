"""The OpenAI-compatible provider: OpenAI, vLLM, Ollama, llama.cpp server, TGI, LM Studio...

Plain httpx and httpx-sse; the `openai` SDK is not imported (it costs ~0.8 s at start-up).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, cast

import anyio
import httpx
from httpx_sse import EventSource

from chinwag.config import Paths, ProviderSettings
from chinwag.connections import out_of_files, pool_limits
from chinwag.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    ResponseError,
)
from chinwag.keystore import mask, mask_url, remember, secret_header
from chinwag.providers.base import ChatRequest, Finish, ProviderEvent, ProviderHealth, ToolCalls
from chinwag.providers.retry import parse_retry_after, with_retries
from chinwag.types import TextDelta, ToolCall, Usage, UsageEvent
from chinwag.version import __version__

OPENAI_URL = "https://api.openai.com/v1"

_loads = json.loads
# What parsing a broken body or chunk raises.
_UNREADABLE = (ValueError, KeyError, TypeError, AttributeError, IndexError)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


class OpenAIProvider:
    """Chat completions over HTTP, streamed as server-sent events."""

    def __init__(self, name: str, settings: ProviderSettings, paths: Paths | None = None) -> None:
        self.name = name
        self.settings = settings
        self.base_url = (settings.base_url or OPENAI_URL).rstrip("/")
        self.shown_url = mask_url(self.base_url)  # for messages: a key in the URL is hidden
        self._http: httpx.AsyncClient | None = None  # made on first use: no I/O in constructors
        self._completions: httpx.URL | str = "/chat/completions"  # absolute with the client

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            s = self.settings
            self._check_base_url()
            if s.api_key is None and self.base_url == OPENAI_URL:
                raise AuthenticationError(
                    f"Provider {self.name!r} needs an API key for {OPENAI_URL}: set OPENAI_API_KEY "
                    f"(or providers.{self.name}.api_key), or point providers.{self.name}.base_url "
                    "(OPENAI_BASE_URL) at an OpenAI-compatible server.",
                    provider=self.name,
                )
            headers = {"User-Agent": f"chinwag/{__version__}", **s.headers}
            if s.api_key is not None:
                headers["Authorization"] = f"Bearer {remember(s.api_key.get_secret_value())}"
            for name, value in s.headers.items():
                if secret_header(name):
                    remember(value)
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(s.timeout, connect=s.connect_timeout),
                limits=pool_limits(s.max_connections),
            )
            # Merged once, as httpx merges a relative URL on every request (40 us of it).
            base = self._http.base_url
            self._completions = base.copy_with(raw_path=base.raw_path + b"chat/completions")
        return self._http

    def _check_base_url(self) -> None:
        """Refuse a base_url httpx cannot send to, before any request (no retry helps)."""
        try:
            url = httpx.URL(self.base_url)
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            env = " (or OPENAI_BASE_URL)" if self.name == "openai" else ""
            raise ConfigError(
                f"providers.{self.name}.base_url{env} is {self.shown_url!r}: it must be an "
                "http:// or https:// URL, such as http://localhost:8000/v1.",
                key=f"providers.{self.name}.base_url",
                value=self.shown_url,
            )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- errors ---------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self.name} ({self.shown_url})"

    def _status_error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        # A provider may quote the key it refused: never repeat it.
        detail = mask(error_detail(response))
        header = response.headers.get("x-should-retry")
        kwargs: dict[str, Any] = {
            "provider": self.name,
            "status_code": status,
            "body": mask(response.text[:2000]),
            "retry_after": parse_retry_after(response.headers),
            "should_retry": None if header is None else header.lower() == "true",
        }
        where = f"{self.name} ({self.shown_url}) answered {status}: {detail}"
        if status == 401:
            return AuthenticationError(
                f"{where}. Check the API key (providers.{self.name}.api_key or OPENAI_API_KEY).",
                **kwargs,
            )
        if status == 403:
            return PermissionDeniedError(
                f"{where}. The key may not use this: check its permissions and the model.",
                **kwargs,
            )
        wait = kwargs["retry_after"]
        if status == 429:
            hint = f"retry after {_seconds(wait)} s" if wait and wait > 0 else "wait and retry"
            return RateLimitError(f"{where}. Rate limited: {hint}, or lower your rate.", **kwargs)
        if status >= 500:
            hint = f"retry after {_seconds(wait)} s" if wait and wait > 0 else "try again later"
            return ProviderUnavailableError(f"{where}. The provider failed; {hint}.", **kwargs)
        hint = {
            404: "Check the model name (`chinwag models` lists them) and the base URL.",
            408: "The request timed out on the server; try again.",
            409: "The server reported a conflict; try again.",
        }.get(status, "Check the request's parameters.")
        return BadRequestError(f"{where}. {hint}", **kwargs)

    def _timed_out(self, setting: str) -> ProviderTimeoutError:
        """The error for a wait that ran past `setting` (timeout, idle_timeout or deadline)."""
        s, key = self.settings, f"providers.{self.name}.{setting}"
        what, hint = {
            "timeout": (f"sent nothing for {s.timeout:g} s", "raise it for slow models"),
            "idle_timeout": (
                f"paused for {s.idle_timeout:g} s mid-answer",
                "raise it if the model pauses longer",
            ),
            "deadline": (
                f"did not finish answering within {s.deadline:g} s, retries included",
                "raise it for longer answers",
            ),
        }[setting]
        return ProviderTimeoutError(
            f"{self._where} {what} ({key}). Try again, or {hint}.", provider=self.name
        )

    def _transport_error(self, exc: httpx.TransportError, streaming: bool) -> ProviderError:
        s = self.settings
        if isinstance(exc, httpx.ConnectTimeout):
            return ProviderTimeoutError(
                f"Could not connect to {self.name} at {self.shown_url} within "
                f"{s.connect_timeout:g} s. Is the server up? Check "
                f"providers.{self.name}.base_url.",
                provider=self.name,
            )
        if isinstance(exc, httpx.TimeoutException):
            return self._timed_out("timeout")
        if isinstance(exc, httpx.ConnectError) and (hint := out_of_files(exc)):
            return ProviderConnectionError(
                f"Could not connect to {self.name} at {self.shown_url}. {hint}",
                provider=self.name,
            )
        if isinstance(exc, httpx.ConnectError):
            return ProviderConnectionError(
                f"Could not connect to {self.name} at {self.shown_url}: {exc}. Is the server "
                f"running? Check providers.{self.name}.base_url.",
                provider=self.name,
            )
        what = "broke mid-answer" if streaming else "failed"
        return ProviderConnectionError(
            f"The connection to {self.name} ({self.shown_url}) {what}: "
            f"{exc or type(exc).__name__}. Try again.",
            provider=self.name,
        )

    # -- requests -------------------------------------------------------------------------

    async def _open(self, body: dict[str, Any], deadline: float, sse: bool) -> httpx.Response:
        """Send the request and read the status; retried by openai-python's policy."""
        client = self._client()

        async def attempt() -> httpx.Response:
            request = client.build_request("POST", self._completions, json=body)
            try:
                response = await client.send(request, stream=True)
            except httpx.TransportError as exc:
                raise self._transport_error(exc, streaming=False) from exc
            if response.status_code != 200:
                try:
                    await response.aread()
                except httpx.TransportError as exc:
                    raise self._transport_error(exc, streaming=False) from exc
                finally:
                    await response.aclose()
                raise self._status_error(response)
            if sse and "text/event-stream" not in response.headers.get("content-type", ""):
                raise await self._not_sse(response)
            return response

        return await with_retries(self.settings.max_retries, attempt, deadline)

    async def _not_sse(self, response: httpx.Response) -> ResponseError:
        """The error for a 200 that is not a stream of server-sent events (not retried)."""
        try:
            await response.aread()
            detail = f" ({error_detail(response)})"
        except httpx.TransportError:
            detail = ""
        finally:
            await response.aclose()
        kind = response.headers.get("content-type") or "no content type"
        return ResponseError(
            f"{self._where} answered a streamed request with {kind}{detail}, not server-sent "
            "events: it is not an OpenAI-compatible streaming endpoint. Check "
            f"providers.{self.name}.base_url.",
            provider=self.name,
            status_code=response.status_code,
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        body: dict[str, Any] = {"model": request.model, "messages": request.messages}
        if request.stream:
            body.update(stream=True, stream_options={"include_usage": True})
        if request.tools:
            body["tools"] = request.tools
            if request.tool_choice is not None:
                body["tool_choice"] = request.tool_choice
        body.update(request.params.model_dump(exclude_none=True))
        s = self.settings
        deadline = anyio.current_time() + s.deadline
        # The scope holds no yield: a cancel scope open across a yield would cancel the
        # caller's code, not ours.
        with anyio.CancelScope(deadline=deadline) as scope:
            response = await self._open(body, deadline, sse=request.stream)
            if not request.stream:
                whole = await self._whole(response)
        if scope.cancelled_caught:
            raise self._timed_out("deadline")
        if not request.stream:
            for event in whole:
                yield event
            return
        body_stream = cast(httpx.AsyncByteStream, response.stream)  # an async client's
        budget = deadline - anyio.current_time()
        watch = _Watched(body_stream, budget, s.timeout, s.idle_timeout, self._timed_out)
        response.stream = watch
        finish: str | None = None
        done = answered = False
        calls: dict[int, dict[str, str]] = {}  # tool-call deltas, assembled by index
        try:
            async for sse in EventSource(response).aiter_sse():
                watch.fresh = True  # a real event (comments never get here): not idle
                data = sse.data
                if data == "[DONE]":
                    # Read on to the end of the body, so the connection goes back to the pool.
                    done = True
                    continue
                try:
                    chunk = _loads(data)
                    choices = chunk.get("choices")
                    if choices:
                        answered = True
                        choice = choices[0]
                        delta = choice["delta"]
                        text = delta.get("content")
                        if text:
                            yield TextDelta(text=text)
                        for part in delta.get("tool_calls") or ():
                            call = calls.setdefault(
                                part["index"], {"id": "", "name": "", "arguments": ""}
                            )
                            function = part.get("function") or {}
                            call["id"] = part.get("id") or call["id"]
                            call["name"] += function.get("name") or ""
                            call["arguments"] += function.get("arguments") or ""
                        finish = choice.get("finish_reason") or finish
                    elif "error" in chunk:
                        raise self._stream_error(chunk["error"])
                    usage = chunk.get("usage")
                    if usage:
                        yield UsageEvent(usage=_usage(usage))
                except _UNREADABLE as exc:
                    raise self._unreadable("a malformed chunk", data, exc) from exc
        except httpx.TransportError as exc:
            raise self._transport_error(exc, streaming=True) from exc
        finally:
            await response.aclose()
        if calls:
            yield ToolCalls([ToolCall(**calls[i]) for i in sorted(calls)])
        if not done and finish is None:
            raise ProviderConnectionError(
                f"{self.name} ({self.shown_url}) ended the stream before the answer was complete. "
                "Try again.",
                provider=self.name,
            )
        if not answered:  # usage-only chunks are normal, but not an answer on their own
            raise self._no_answer()
        yield Finish(finish)

    def _no_answer(self) -> ResponseError:
        return ResponseError(
            f"{self._where} sent no answer (no choices). Try again; if it persists, check "
            f"that providers.{self.name}.base_url is an OpenAI-compatible server.",
            provider=self.name,
        )

    async def _whole(self, response: httpx.Response) -> list[ProviderEvent]:
        """The events of a non-streamed answer."""
        try:
            raw = await response.aread()
        except httpx.TransportError as exc:
            raise self._transport_error(exc, streaming=False) from exc
        finally:
            await response.aclose()
        try:
            body = _loads(raw)
            if isinstance(body, dict) and not body.get("choices"):
                if "error" in body:
                    raise self._stream_error(body["error"], mid_answer=False)
                raise self._no_answer()
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
            usage = body.get("usage")
            events: list[ProviderEvent] = [TextDelta(text=text)] if text else []
            if choice["message"].get("tool_calls"):
                events.append(
                    ToolCalls(
                        [
                            ToolCall(
                                id=c["id"],
                                name=c["function"]["name"],
                                arguments=c["function"].get("arguments") or "",
                            )
                            for c in choice["message"]["tool_calls"]
                        ]
                    )
                )
            if usage:
                events.append(UsageEvent(usage=_usage(usage)))
            events.append(Finish(choice.get("finish_reason")))
        except _UNREADABLE as exc:
            raise self._unreadable("an answer chinwag cannot read", raw, exc) from exc
        return events

    def _unreadable(self, what: str, raw: str | bytes, exc: Exception) -> ResponseError:
        return ResponseError(
            f"{self.name} ({self.shown_url}) sent {what} ({exc!r}): {raw[:200]!r}. "
            "Is base_url an OpenAI-compatible server?",
            provider=self.name,
        )

    def _stream_error(self, error: Any, mid_answer: bool = True) -> ProviderError:
        message = error.get("message", error) if isinstance(error, dict) else error
        when = " mid-answer" if mid_answer else ""
        return ProviderUnavailableError(
            f"{self._where} reported an error{when}: {mask(_shorten(str(message), 300))}. "
            "Try again.",
            provider=self.name,
        )

    async def models(self) -> list[str]:
        client = self._client()
        try:
            response = await client.get("/models")
        except httpx.TransportError as exc:
            raise self._transport_error(exc, streaming=False) from exc
        if response.status_code != 200:
            raise self._status_error(response)
        try:
            return sorted(str(item["id"]) for item in response.json()["data"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ResponseError(
                f"{self.name} ({self.shown_url}) sent a model list chinwag cannot read: {exc!r}.",
                provider=self.name,
            ) from exc

    def context_window(self, model: str) -> int | None:
        """Unknown: the OpenAI API does not say; models.<name>.context_window tells chinwag."""
        return None

    def takes_images(self, model: str) -> bool:
        """Image parts go to an OpenAI-compatible server unless providers.<name>.images is
        false (a server of text-only models): the API does not say which models see."""
        return self.settings.images is not False

    async def health(self) -> ProviderHealth:
        started = time.perf_counter()
        try:
            models = await self.models()
        except (ProviderError, ConfigError) as exc:
            return ProviderHealth(self.name, False, None, str(exc))
        latency = (time.perf_counter() - started) * 1000
        return ProviderHealth(self.name, True, latency, f"{len(models)} models at {self.shown_url}")


class _Watched(httpx.AsyncByteStream):
    """A streamed body that must bring a real event every `idle` s and end within `budget` s.

    Only time spent waiting on the socket counts, never the caller's time between chunks.
    The idle clock restarts when the reader sets `fresh` (a real event arrived), so
    keep-alive comments do not keep a stream open; before the first event the limit is
    `first` (the timeout). One lazy timer watches the reads: per chunk this costs a few
    attribute updates, where a cancel scope per chunk cost a third of the stream's speed.
    An expired read is cancelled as asyncio.timeout does (cancel, then uncancel), and only
    while it is under way, so an expiry never cancels the caller's code.
    """

    def __init__(
        self,
        inner: httpx.AsyncByteStream,
        budget: float,
        first: float,
        idle: float,
        expired: Callable[[str], ProviderTimeoutError],
    ) -> None:
        self._inner = inner
        self._reads: AsyncIterator[bytes] | None = None
        self._budget, self._first, self._idle = budget, first, idle
        self._expired = expired
        self._spent = 0.0  # seconds spent waiting on reads
        self._mark = 0.0  # _spent when the last real event arrived
        self._started = False
        self.fresh = False  # set by the reader for every real event
        self._read_from: float | None = None  # when the read under way began
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._timer: asyncio.TimerHandle | None = None
        self._fired: str | None = None  # the setting whose limit cancelled the read

    def __aiter__(self) -> _Watched:
        self._reads = self._inner.__aiter__()
        return self

    def _left(self) -> tuple[float, str]:
        """Seconds of waiting left before a limit, and the setting that sets it."""
        now = time.monotonic()
        spent = self._spent + (now - self._read_from if self._read_from is not None else 0)
        wait, name = (self._idle, "idle_timeout") if self._started else (self._first, "timeout")
        idle_left = wait - (spent - self._mark)
        deadline_left = self._budget - spent
        return (deadline_left, "deadline") if deadline_left <= idle_left else (idle_left, name)

    def _check(self) -> None:
        self._timer = None
        if self._read_from is None or self._task is None:
            return  # not reading: the next read arms the timer again
        left, name = self._left()
        if left > 0:
            self._timer = asyncio.get_running_loop().call_later(left, self._check)
        else:
            self._fired = name
            self._task.cancel()

    def _expiry(self) -> str | None:
        """The setting that expired if our timer cancelled the read, undoing that cancel."""
        name, self._fired = self._fired, None
        if name is None or self._task is None or self._task.uncancel() > self._cancelling:
            return None  # someone else cancelled too: let their cancellation through
        return name

    async def __anext__(self) -> bytes:
        assert self._reads is not None
        if self.fresh:
            self.fresh = False
            self._mark = self._spent
            if not self._started and self._timer is not None:
                self._timer.cancel()  # it was set for `first`; `idle` may be shorter
                self._timer = None
            self._started = True
        try:
            task = self._task = asyncio.current_task()
        except RuntimeError:  # another anyio backend (trio): a cancel scope per read
            return await self._read_in_scope()
        assert task is not None
        self._cancelling = task.cancelling()
        start = self._read_from = time.monotonic()
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._left()[0], self._check)
        try:
            chunk = await self._reads.__anext__()
        except BaseException as exc:
            if self._fired is not None and (name := self._expiry()) is not None:
                raise self._expired(name) from exc
            raise
        finally:
            self._read_from = None
            self._spent += time.monotonic() - start
        if self._fired is not None and (name := self._expiry()) is not None:
            raise self._expired(name)  # a layer below swallowed our cancellation
        return chunk

    async def _read_in_scope(self) -> bytes:
        assert self._reads is not None
        left, name = self._left()
        start = time.monotonic()
        try:
            with anyio.move_on_after(left) as scope:
                return await self._reads.__anext__()
        finally:
            self._spent += time.monotonic() - start
        assert scope.cancelled_caught
        raise self._expired(name)

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._inner.aclose()


def error_detail(response: httpx.Response) -> str:
    """What an error body says, on one line: its JSON message, or an HTML page's title."""
    text = response.text[:20_000]
    try:
        body = json.loads(text)
    except ValueError:
        if "<" in text:  # an HTML page (a proxy's, say): its title, else its text
            title = _TITLE.search(text)
            text = html.unescape(title.group(1) if title else _TAG.sub(" ", text))
        return _shorten(text, 100) or response.reason_phrase
    err = body.get("error", body) if isinstance(body, dict) else body
    message = err.get("message", err) if isinstance(err, dict) else err
    return _shorten(str(message), 300) or response.reason_phrase


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _usage(raw: dict[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=raw.get("prompt_tokens") or 0,
        completion_tokens=raw.get("completion_tokens") or 0,
    )
