"""The FastAPI application: one client (engine and store) for every request."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
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

    settings = config.settings
    # Files travel base64 in JSON (4 bytes for 3), with a little room for their names.
    files = 4 * -(-settings.attachments.max_total // 3) + 1_000 * settings.attachments.max_files
    app.add_middleware(Completions)  # inside BodyLimit, added after it: bodies are checked
    app.add_middleware(BodyLimit, limit=settings.server.max_body, files=files)
    _handle_errors(app)
    app.openapi = partial(_openapi, app)  # type: ignore[method-assign]
    app.include_router(openai_api)
    app.include_router(chinwag_api)
    mount(app)  # the web page at /
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the errors as this server sends them: every error answer
    in OpenAI's envelope, and a 400 where FastAPI would document its 422 (which the
    error handlers never send)."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        spec = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        schemas["Error"] = errors.ENVELOPE_SCHEMA
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for operations in spec.get("paths", {}).values():
            for operation in operations.values():
                answers = operation.get("responses", {})
                if answers.pop("422", None) is not None:
                    answers.setdefault("400", {"description": "Invalid request"})
                for status, answer in answers.items():
                    if status[:1] in ("4", "5"):
                        answer["content"] = error
        app.openapi_schema = spec
    return app.openapi_schema


def _handle_errors(app: FastAPI) -> None:
    """Every error leaves in OpenAI's envelope; nothing leaks a traceback."""

    @app.exception_handler(ChinwagError)
    @app.exception_handler(RequestValidationError)
    @app.exception_handler(StarletteHTTPException)
    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        return errors.response(exc)


# The routes whose bodies may carry files: turns, and conversations imported with theirs.
_CARRY_FILES = re.compile(
    r"/v1/chat/completions|/api/v1/(chat|conversations/import|conversations/[^/]+/messages"
    r"|messages/[^/]+/edit)"
)


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413 before they are parsed: by Content-Length,
    or, for a chunked body (no length), by reading it up to the limit first. The routes
    that take files allow `files` bytes more."""

    def __init__(self, app: ASGIApp, limit: int, files: int = 0) -> None:
        self.app = app
        self.limit = limit
        self.files = files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        if self.files and _CARRY_FILES.fullmatch(scope["path"]):
            limit += self.files
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:  # the HTTP server holds the body to it
            if length.isdigit() and int(length) > limit:
                await self._refuse(send, limit)
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
            if len(body) > limit:
                await self._refuse(send, limit)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # the disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, limit: int) -> None:
        why = "server.max_body" if limit == self.limit else "server.max_body and attachments.*"
        body = errors.envelope(
            f"The request body is over {limit:,} bytes ({why}).",
            "invalid_request_error",
            "InputError",
        )
        response = JSONResponse(body, status_code=413)
        await response({"type": "http"}, _nothing, send)


async def _nothing() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


__all__ = ["create_app"]
