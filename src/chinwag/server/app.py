"""The FastAPI application: one client (engine and store) for every request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chinwag.client.aio import AsyncClient
from chinwag.config import Config
from chinwag.errors import ChinwagError
from chinwag.server import errors
from chinwag.version import __version__


def create_app(config: Config | None = None) -> FastAPI:
    """The chinwag server as an ASGI app (run it with `chinwag serve`, or any ASGI server)."""
    config = config or Config()
    config.set("server.url", None)  # the server runs the engine itself; the URL is clients'

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncClient(config) as client:
            app.state.client = client
            yield

    app = FastAPI(
        title="chinwag",
        version=__version__,
        summary="chinwag's bots, conversations and providers: the OpenAI API and chinwag's own.",
        lifespan=lifespan,
    )
    app.state.config = config
    from chinwag.server.api import router as chinwag_api
    from chinwag.server.openai_api import Completions, router as openai_api
    from chinwag.server.web import mount

    app.add_middleware(Completions)  # inside BodyLimit, added after it: bodies are checked
    app.add_middleware(BodyLimit, limit=config.settings.server.max_body)
    _handle_errors(app)
    app.include_router(openai_api)
    app.include_router(chinwag_api)
    mount(app)  # the web page at /
    return app


def _handle_errors(app: FastAPI) -> None:
    """Every error leaves in OpenAI's envelope; nothing leaks a traceback."""

    @app.exception_handler(ChinwagError)
    @app.exception_handler(RequestValidationError)
    @app.exception_handler(StarletteHTTPException)
    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        return errors.response(exc)


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413 before they are parsed: by Content-Length,
    or, for a chunked body (no length), by reading it up to the limit first."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:  # the HTTP server holds the body to it
            if length.isdigit() and int(length) > self.limit:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)
            return
        # Read here, where going over can still be answered: raised from inside the app's
        # receive, FastAPI would turn it into a 400 about parsing.
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body was whole
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._refuse(send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # the disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = errors.envelope(
            f"The request body is over {self.limit:,} bytes (server.max_body).",
            "invalid_request_error",
            "InputError",
        )
        response = JSONResponse(body, status_code=413)
        await response({"type": "http"}, _nothing, send)


async def _nothing() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


__all__ = ["create_app"]
