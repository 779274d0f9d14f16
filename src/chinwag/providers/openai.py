"""The OpenAI-compatible provider: OpenAI, vLLM, Ollama, llama.cpp server, TGI, LM Studio...

Plain httpx and httpx-sse; the `openai` SDK is not imported (it costs ~0.8 s at start-up).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from typing import Any

import httpx
from httpx_sse import EventSource

from chinwag import __version__
from chinwag.config import Paths, ProviderSettings
from chinwag.errors import (
    AuthenticationError,
    BadRequestError,
    ConnectionError,
    ProviderError,
    RateLimitError,
    ResponseError,
    ServerError,
    TimeoutError,
)
from chinwag.providers.base import ChatRequest, Finish, ProviderEvent, ProviderHealth, ToolCalls
from chinwag.providers.retry import parse_retry_after, with_retries
from chinwag.types import TextDelta, ToolCall, Usage, UsageEvent

OPENAI_URL = "https://api.openai.com/v1"

_loads = json.loads
# What parsing a broken body or chunk raises.
_UNREADABLE = (ValueError, KeyError, TypeError, AttributeError, IndexError)


class OpenAIProvider:
    """Chat completions over HTTP, streamed as server-sent events."""

    def __init__(self, name: str, settings: ProviderSettings, paths: Paths | None = None) -> None:
        self.name = name
        self.settings = settings
        self.base_url = (settings.base_url or OPENAI_URL).rstrip("/")
        self._http: httpx.AsyncClient | None = None  # made on first use: no I/O in constructors

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            s = self.settings
            if s.api_key is None and self.base_url == OPENAI_URL:
                raise AuthenticationError(
                    f"Provider {self.name!r} needs an API key for {OPENAI_URL}: set OPENAI_API_KEY "
                    f"(or providers.{self.name}.api_key), or point providers.{self.name}.base_url "
                    "(OPENAI_BASE_URL) at an OpenAI-compatible server.",
                    provider=self.name,
                )
            headers = {"User-Agent": f"chinwag/{__version__}", **s.headers}
            if s.api_key is not None:
                headers["Authorization"] = f"Bearer {s.api_key.get_secret_value()}"
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(s.timeout, connect=s.connect_timeout),
                # openai-python's limits: many streams share one pool.
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- errors ---------------------------------------------------------------------------

    def _status_error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        detail = response.text.strip()
        try:
            body = json.loads(detail)
            err = body.get("error", body) if isinstance(body, dict) else body
            detail = str(err.get("message", err) if isinstance(err, dict) else err)
        except ValueError:
            pass
        detail = detail[:500] or response.reason_phrase
        header = response.headers.get("x-should-retry")
        kwargs: dict[str, Any] = {
            "provider": self.name,
            "status_code": status,
            "retry_after": parse_retry_after(response.headers),
            "should_retry": None if header is None else header.lower() == "true",
        }
        where = f"{self.name} ({self.base_url}) answered {status}: {detail}"
        if status in (401, 403):
            return AuthenticationError(
                f"{where}. Check the API key (providers.{self.name}.api_key or OPENAI_API_KEY).",
                **kwargs,
            )
        if status == 429:
            wait = kwargs["retry_after"]
            hint = f"retry after {wait:.0f} s" if wait else "wait and retry"
            return RateLimitError(f"{where}. Rate limited: {hint}, or lower your rate.", **kwargs)
        if status >= 500:
            return ServerError(f"{where}. The provider failed; try again later.", **kwargs)
        hint = {
            404: "Check the model name (`chinwag models` lists them) and the base URL.",
            408: "The request timed out on the server; try again.",
            409: "The server reported a conflict; try again.",
        }.get(status, "Check the request's parameters.")
        return BadRequestError(f"{where}. {hint}", **kwargs)

    def _transport_error(self, exc: httpx.TransportError, streaming: bool) -> ProviderError:
        s = self.settings
        if isinstance(exc, httpx.ConnectTimeout):
            return TimeoutError(
                f"Could not connect to {self.name} at {self.base_url} within "
                f"{s.connect_timeout} s. Is the server up? Check providers.{self.name}.base_url.",
                provider=self.name,
            )
        if isinstance(exc, httpx.TimeoutException):
            return TimeoutError(
                f"{self.name} ({self.base_url}) sent nothing for {s.timeout} s (the timeout). "
                f"Try again, or raise providers.{self.name}.timeout for slow models.",
                provider=self.name,
            )
        if isinstance(exc, httpx.ConnectError):
            return ConnectionError(
                f"Could not connect to {self.name} at {self.base_url}: {exc}. Is the server "
                f"running? Check providers.{self.name}.base_url.",
                provider=self.name,
            )
        what = "broke mid-answer" if streaming else "failed"
        return ConnectionError(
            f"The connection to {self.name} ({self.base_url}) {what}: {exc or type(exc).__name__}. "
            "Try again.",
            provider=self.name,
        )

    # -- requests -------------------------------------------------------------------------

    async def _open(self, body: dict[str, Any]) -> httpx.Response:
        """Send the request and read the status; retried by openai-python's policy."""
        client = self._client()

        async def attempt() -> httpx.Response:
            request = client.build_request("POST", "/chat/completions", json=body)
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
            return response

        return await with_retries(self.settings.max_retries, attempt)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        body: dict[str, Any] = {"model": request.model, "messages": request.messages}
        if request.stream:
            body.update(stream=True, stream_options={"include_usage": True})
        if request.tools:
            body["tools"] = request.tools
        body.update(request.params.model_dump(exclude_none=True))
        response = await self._open(body)
        if not request.stream:
            for event in await self._whole(response):
                yield event
            return
        finish: str | None = None
        done = False
        calls: dict[int, dict[str, str]] = {}  # tool-call deltas, assembled by index
        try:
            async for sse in EventSource(response).aiter_sse():
                data = sse.data
                if data == "[DONE]":
                    # Read on to the end of the body, so the connection goes back to the pool.
                    done = True
                    continue
                try:
                    chunk = _loads(data)
                    choices = chunk.get("choices")
                    if choices:
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
            raise ConnectionError(
                f"{self.name} ({self.base_url}) ended the stream before the answer was complete. "
                "Try again.",
                provider=self.name,
            )
        yield Finish(finish)

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
            f"{self.name} ({self.base_url}) sent {what} ({exc!r}): {raw[:200]!r}. "
            "Is base_url an OpenAI-compatible server?",
            provider=self.name,
        )

    def _stream_error(self, error: Any) -> ProviderError:
        message = error.get("message", error) if isinstance(error, dict) else error
        return ServerError(
            f"{self.name} ({self.base_url}) reported an error mid-answer: {message}. Try again.",
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
                f"{self.name} ({self.base_url}) sent a model list chinwag cannot read: {exc!r}.",
                provider=self.name,
            ) from exc

    async def health(self) -> ProviderHealth:
        started = time.perf_counter()
        try:
            models = await self.models()
        except ProviderError as exc:
            return ProviderHealth(self.name, False, None, str(exc))
        latency = (time.perf_counter() - started) * 1000
        return ProviderHealth(self.name, True, latency, f"{len(models)} models at {self.base_url}")


def _usage(raw: dict[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=raw.get("prompt_tokens") or 0,
        completion_tokens=raw.get("completion_tokens") or 0,
    )
