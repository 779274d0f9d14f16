"""HTTP to a chinwag server's /api/v1: one pooled httpx client, its key, the providers'
retry policy, and the server's error envelope turned back into chinwag's exceptions."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any, TypeVar, overload
from urllib.parse import quote

import httpx
from pydantic import Field, TypeAdapter, ValidationError

from chinwag import checks
from chinwag.config import ServerSettings
from chinwag.connections import caused_by, out_of_files, pool_limits
from chinwag.errors import (
    AccessError,
    ChinwagError,
    ConfigError,
    InputError,
    LimitError,
    NotFoundError,
    ProviderConnectionError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    ResponseError,
    ServerConnectionError,
    rebuild,
)
from chinwag.keystore import mask_url
from chinwag.providers.openai import error_detail
from chinwag.providers.retry import parse_retry_after, should_retry, with_retries
from chinwag.types import Event, Reply
from chinwag.version import __version__

T = TypeVar("T")
_EVENT: TypeAdapter[Event] = TypeAdapter(Annotated[Event, Field(discriminator="type")])
# Where the server sent no envelope (a proxy's page, say): the class its status means.
_BY_STATUS = {401: AccessError, 404: NotFoundError, 429: LimitError}
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class Transport:
    """Requests to one chinwag server, as the key's user."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        settings: ServerSettings,
        *,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        if not isinstance(verify, bool | ssl.SSLContext):
            raise InputError(
                f"verify must be True, False or an ssl.SSLContext, not {verify!r:.60}."
            )
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            parsed = None
        self.shown_url = mask_url(url)
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(
                f"server.url (CHINWAG_URL) is {self.shown_url!r}: it must be the http:// or "
                "https:// address of a chinwag server, such as http://127.0.0.1:8000.",
                key="server.url",
                value=self.shown_url,
            )
        if api_key is not None and not (api_key.isascii() and api_key.isprintable()):
            raise ConfigError(
                "server.api_key (CHINWAG_API_KEY) holds characters no key has (a line break, "
                "a space, non-ASCII): paste the key `chinwag keys create` printed.",
                key="server.api_key",
            )
        self.url = url.rstrip("/")
        self._key = api_key.strip() if api_key else None
        self._settings = settings
        self._verify = verify
        self._http: httpx.AsyncClient | None = None  # made on first use: no I/O here

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            headers = {"User-Agent": f"chinwag/{__version__}"}
            if self._key:
                headers["Authorization"] = f"Bearer {self._key}"
            s = self._settings
            self._http = httpx.AsyncClient(
                base_url=self.url + "/api/v1",
                headers=headers,
                timeout=httpx.Timeout(s.timeout, connect=s.connect_timeout),
                limits=pool_limits(),
                verify=self._verify,
            )
        return self._http

    @overload
    async def request(
        self,
        method: str,
        path: str,
        into: None = None,
        *,
        json_body: Any = None,
        content: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None: ...

    @overload
    async def request(
        self,
        method: str,
        path: str,
        into: type[T],
        *,
        json_body: Any = None,
        content: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> T: ...

    async def request(
        self,
        method: str,
        path: str,
        into: type[T] | None = None,
        *,
        json_body: Any = None,
        content: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> T | None:
        """Send one request and read its answer as `into` (a model, a list of them, str for
        the text as sent, bytes for the body); None reads nothing. The server's errors are
        raised."""
        response = await self._send(method, path, json_body, content, params, stream=False)
        if into is None:
            return None
        if into is str:
            return response.text  # type: ignore[return-value]
        if into is bytes:
            return response.content  # type: ignore[return-value]
        try:
            found: T = _adapter(into).validate_json(response.content)
            return found
        except ValidationError as exc:
            raise ResponseError(
                f"The chinwag server at {self.shown_url} answered {method} {path} with what "
                f"chinwag cannot read ({checks.problem(exc)}). Are the client and the server "
                "the same chinwag version?"
            ) from None

    async def events(self, path: str, body: Mapping[str, Any]) -> AsyncIterator[Event]:
        """POST a turn with stream=true and yield its typed events as the server sends them.
        Leaving early closes the connection: the server stores what was said as partial."""
        response = await self._send("POST", path, body, None, None, stream=True)
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue  # blank separators and keep-alive comments
                data = line[6:]
                if data == "[DONE]":
                    return
                try:
                    event = _EVENT.validate_json(data)
                except ValueError:
                    raise self._stream_error(data) from None
                yield event
        except httpx.TransportError as exc:
            raise self._transport_error(exc, streaming=True) from exc
        finally:
            await response.aclose()
        raise ProviderConnectionError(
            f"The chinwag server at {self.shown_url} ended the answer early; what it stored "
            "so far is in the conversation's history."
        )

    async def _send(
        self,
        method: str,
        path: str,
        json_body: Any,
        content: str | None,
        params: Mapping[str, Any] | None,
        *,
        stream: bool,
    ) -> httpx.Response:
        client = self._client()
        try:
            request = client.build_request(
                method, path, json=json_body, content=content, params=_query(params),
                headers={"content-type": "application/json"} if content is not None else None,
            )  # fmt: skip
        except (TypeError, ValueError) as exc:  # a value JSON cannot carry
            raise InputError(f"Cannot send that to the server: {exc}.") from None

        reached = False  # whether the last attempt got to the server

        async def attempt() -> httpx.Response:
            nonlocal reached
            reached = False
            try:
                response = await client.send(request, stream=True)
            except httpx.TransportError as exc:
                reached = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                raise self._transport_error(exc, streaming=False) from exc
            reached = True
            if response.status_code < 400 and stream:
                return response
            try:
                await response.aread()
            except httpx.TransportError as exc:
                raise self._transport_error(exc, streaming=False) from exc
            finally:
                await response.aclose()
            if response.status_code >= 400:
                raise self._status_error(response)
            return response

        # A request that reached the server may have been acted on (a question stored):
        # only what never left, or what is safe to repeat, is tried again.
        def retryable(exc: BaseException) -> bool:
            return (method in _IDEMPOTENT or not reached) and should_retry(exc)

        return await with_retries(self._settings.max_retries, attempt, retryable=retryable)

    # -- errors ---------------------------------------------------------------------------

    def _status_error(self, response: httpx.Response) -> ChinwagError:
        """The exception the server's envelope names, as the engine would have raised it."""
        status = response.status_code
        retry_after = parse_retry_after(response.headers)
        should = {"true": True, "false": False}.get(response.headers.get("x-should-retry", ""))
        try:
            err = response.json()["error"]
            kind, message = err["code"], err["message"]
            if not (isinstance(kind, str) and isinstance(message, str)):
                raise TypeError
        except (ValueError, KeyError, TypeError):  # not chinwag's envelope: a proxy, say
            cls = _BY_STATUS.get(status, ProviderUnavailableError if status >= 500 else None)
            name = cls.__name__ if cls is not None else "ChinwagError"
            detail = error_detail(response)
            text = f"The chinwag server at {self.shown_url} answered {status}: {detail}"
            return rebuild(name, text, status_code=status, retry_after=retry_after)
        partial = err.get("partial")
        try:
            reply = Reply.model_validate(partial) if isinstance(partial, dict) else None
        except ValidationError:
            reply = None  # the error still says what happened
        retry_after = err.get("retry_after", retry_after)
        return rebuild(
            kind, message, status_code=status, retry_after=retry_after, should_retry=should,
            partial=reply,
        )  # fmt: skip

    def _transport_error(self, exc: httpx.TransportError, streaming: bool) -> ChinwagError:
        where = f"the chinwag server at {self.shown_url}"
        if caused_by(exc, ssl.SSLCertVerificationError):
            return ServerConnectionError(
                f"The TLS certificate of {where} was not accepted: {exc}. Trust it with "
                "verify=ssl.create_default_context(cafile=...), or skip the check with "
                "verify=False.",
                should_retry=False,  # trying again would meet the same certificate
            )
        if isinstance(exc, httpx.ConnectError) and (hint := out_of_files(exc)):
            return ServerConnectionError(f"Cannot connect to {where}. {hint}")
        if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
            return ServerConnectionError(
                f"Cannot reach {where}: {exc or type(exc).__name__}. Is `chinwag serve` "
                "running there? Check server.url (CHINWAG_URL)."
            )
        if isinstance(exc, httpx.TimeoutException):
            return ProviderTimeoutError(
                f"No answer from {where} within {self._settings.timeout:g} s "
                "(server.timeout). Try again, or raise server.timeout."
            )
        what = "broke mid-answer" if streaming else "failed"
        return ServerConnectionError(
            f"The connection to {where} {what}: {exc or type(exc).__name__}. Try again."
        )

    def _stream_error(self, data: str) -> ResponseError:
        return ResponseError(
            f"The chinwag server at {self.shown_url} sent an event chinwag cannot read: "
            f"{data[:120]!r}. Are the client and server the same chinwag version?"
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(into: Any) -> TypeAdapter[Any]:
    """One adapter per answer type (making one costs far more than using it)."""
    found = _ADAPTERS.get(into)
    if found is None:
        found = _ADAPTERS[into] = TypeAdapter(into)
    return found


def segment(value: Any, what: str) -> str:
    """An id or key as one URL path segment."""
    return quote(checks.identifier(value, what), safe="")


def _query(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters without the ones left out, dates and flags as the server reads them."""
    if params is None:
        return None
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        out[key] = value
    return out


__all__ = ["Transport", "segment"]
