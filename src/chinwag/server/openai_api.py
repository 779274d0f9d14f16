"""The OpenAI API under /v1: models (bots, and providers' models) and chat completions.

A chat completion is stateless by default (the client sends the history), and still
counted in usage. `x-chinwag-conversation: ID` (or `new`) makes it a stored turn of a
conversation; the response names the conversation in the same header.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from chinwag.client.aio import AsyncClient
from chinwag.errors import ChinwagError, InputError, NotFoundError, error_from
from chinwag.server import errors
from chinwag.server.auth import Caller, caller
from chinwag.server.limits import Ticket, ticket_for
from chinwag.server.sessions import SESSION_COOKIE
from chinwag.streams import AsyncStream
from chinwag.types import Bot, Done, ErrorEvent, Event, Reply, TextDelta, ToolCall, ToolCallEvent

router = APIRouter(prefix="/v1", tags=["OpenAI API"])
PATH = "/v1/chat/completions"
CONVERSATION_HEADER = "x-chinwag-conversation"
MAX_MODEL = 200


class ChatMessage(BaseModel):
    """A message as OpenAI sends it; content may be text or a list of text parts."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions. Fields chinwag does not use are accepted and ignored, as
    Open WebUI and LibreChat send extra ones."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, description="A bot's slug, or `provider/model`.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=10_000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = Field(
        default=None, max_length=128, description="Run by the caller: calls come back."
    )
    tool_choice: str | dict[str, Any] | None = None
    n: int | None = Field(default=None, ge=1, le=1, description="Only 1 is supported.")
    user: str | None = Field(
        default=None, description="Stored with a kept turn's question (meta.end_user); not a scope."
    )


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def _client(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.client
    return client


@router.get("/models", response_model=ModelList, summary="Bots, then providers' models")
async def models(request: Request, who: Annotated[Caller, Depends(caller)]) -> ModelList:
    """Every bot the key's user can use (its slug is the model id), then each provider's
    models as `provider/model` (a provider that does not answer is left out)."""
    client = _client(request)
    cards = [
        ModelCard(id=b.slug, owned_by="chinwag") for b in await client.bots.list(user=who.user)
    ]
    for name in client.config.settings.providers:
        try:
            found = await client.models(name)
        except ChinwagError:
            continue
        cards += [ModelCard(id=f"{name}/{model}", owned_by=name) for model in found]
    return ModelList(data=cards)


@router.post(
    "/chat/completions",
    summary="A chat completion, streamed (SSE) or not",
    responses={400: {}, 401: {}, 404: {}, 413: {}, 429: {}, 502: {}, 504: {}},
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    who: Annotated[Caller, Depends(caller)],
    conversation: Annotated[str | None, Header(alias=CONVERSATION_HEADER)] = None,
) -> Any:
    """Documented here; served by `Completions`, which calls `complete` as this would."""
    return await complete(body, request, who, conversation)


class Completions:
    """POST /v1/chat/completions without FastAPI's per-request machinery (dependency
    solving, a body parsed twice, its wrappers): a tenth to a sixth of the server's CPU
    per request on this, its busiest route. The same checks run: the body through the route's
    model (parsed from the bytes by pydantic), the one `caller` function for the key, and
    the errors through the app's one mapping. Every other request goes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response: Response
        try:
            # As FastAPI: the key first (an unknown caller's body is not read), then the body.
            who = await caller(request, None, None, request.cookies.get(SESSION_COOKIE))
            body = _body(request.headers.get("content-type"), await request.body())
            header = request.headers.get(CONVERSATION_HEADER)
            response = await complete(body, request, who, header)
        except ClientDisconnect:
            return  # gone before its body was whole: nobody to answer
        except (ChinwagError, ValidationError, HTTPException) as exc:
            response = errors.response(exc)
        await response(scope, receive, send)


def _body(kind: str | None, raw: bytes) -> ChatCompletionRequest:
    """The request's body, read as FastAPI reads a JSON body: any content type of JSON (or
    none), UTF-8 straight from the bytes, and the encodings json.loads takes (a BOM, UTF-16)
    by way of it."""
    if kind is not None:
        main, _, rest = kind.partition(";")[0].strip().lower().partition("/")
        if main != "application" or not (rest == "json" or rest.endswith("+json")):
            raise InputError(
                f"The body must be JSON (content-type application/json), not {kind[:60]!r}."
            )
    try:
        return ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as exc:
        if exc.errors()[0]["type"] != "json_invalid":
            raise
        unreadable = exc
    try:
        found = json.loads(raw)
    except (ValueError, RecursionError):
        raise unreadable from None
    return ChatCompletionRequest.model_validate(found)


async def complete(
    body: ChatCompletionRequest, request: Request, who: Caller, conversation: str | None
) -> Response:
    """A chat completion for a checked body and its caller."""
    client = _client(request)
    options = await _options(client, body, who)
    messages = [_message(i, m) for i, m in enumerate(body.messages)]
    headers: dict[str, str] = {}
    if body.tools or any(m["role"] == "tool" or m.get("tool_calls") for m in messages):
        if conversation is not None:
            raise InputError(
                "Tool calls go through stateless requests (the caller keeps their history): "
                f"drop the {CONVERSATION_HEADER} header."
            )
        options["tool_schemas"] = body.tools or []
        if body.tool_choice is not None:
            options["tool_choice"] = body.tool_choice
    if conversation is None:
        options["keep"] = False
    elif conversation != "new":
        if messages[-1]["role"] != "user":
            raise InputError("The last message must be the user's prompt (role 'user').")
        await client.conversations.get(conversation, user=who.user)
        messages = [messages[-1]]  # the stored conversation holds the history
    ticket = ticket_for(request, who, options)
    made = conversation == "new"
    if made:  # made first, so that even a stream can name it
        conversation = (await client.conversations.create(bot=options["bot"], user=who.user)).id
    if conversation is not None:
        options["conversation"] = headers[CONVERSATION_HEADER] = conversation
    try:
        if body.stream:
            started = client.chat(messages, stream=True, **options)
            events, first, stream = await prime(started, ticket)
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(
                _sse(stream, events, first, body.model, include_usage, ticket),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", **headers},
            )
        reply = await ticket.run(client.chat(messages, **options))
    except ChinwagError as exc:
        return await _refused(client, exc, who, conversation if made else None, headers)
    return JSONResponse(_completion(reply, body.model), headers=headers)


async def _refused(
    client: AsyncClient,
    exc: ChinwagError,
    who: Caller,
    made: str | None,
    headers: dict[str, str],
) -> JSONResponse:
    """A turn that failed before its first byte. A conversation made for it is deleted if
    the turn was refused before its question was stored (bad input leaves nothing), and
    named in the answer's header if the question is in it."""
    if exc.partial is None:
        headers.pop(CONVERSATION_HEADER, None)
        if made is not None:
            with anyio.CancelScope(shield=True):
                await client.conversations.delete(made, user=who.user)
    status, body, more = errors.of(exc)
    return JSONResponse(body, status_code=status, headers={**more, **headers})


async def _options(client: AsyncClient, body: ChatCompletionRequest, who: Caller) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bot": await _bot(client, body.model, who),
        "user": who.user,
        "end_user": body.user,  # the caller's own records; the key decides the scope
        "temperature": body.temperature,
        "top_p": body.top_p,
        "max_tokens": body.max_completion_tokens or body.max_tokens,
        "stop": body.stop,
        "seed": body.seed,
    }
    return {k: v for k, v in options.items() if v is not None}


async def _bot(client: AsyncClient, model: str, who: Caller) -> Bot | str:
    """The bot a model id names: `provider/model` (no lookup), or a bot's slug, uid or name
    (shared bots resolve without the store)."""
    if len(model) > MAX_MODEL or not model.isprintable():  # as a bot's name and the store hold
        raise InputError(
            f"model must be at most {MAX_MODEL} printable characters, not {model!r:.60}: "
            "GET /v1/models lists the bots and models here."
        )
    provider, slash, name = model.partition("/")
    if slash and name and provider in client.config.settings.providers:
        return Bot(
            uid=f"model.{uuid.uuid5(uuid.NAMESPACE_URL, model).hex[:16]}",
            slug=f"{provider}.{uuid.uuid5(uuid.NAMESPACE_URL, model).hex[:8]}",
            name=model,
            provider=provider,
            model=name,
        )
    try:
        return await client.bots.find(model, user=who.user)
    except NotFoundError:
        raise NotFoundError(
            f"No model {model!r}: GET /v1/models lists the bots and models here."
        ) from None


def _message(index: int, message: ChatMessage) -> dict[str, Any]:
    """An OpenAI message as chinwag's: developer is system, text parts are joined, image
    and file parts kept for the turn to read (chinwag.plan), tool calls and results kept as
    they are."""
    content = message.content
    if isinstance(content, list) and all(part.get("type") == "text" for part in content):
        texts = []
        for part in content:
            if not isinstance(part.get("text"), str):
                raise InputError(f"messages[{index}]: a text part needs its text.")
            texts.append(part["text"])
        content = "".join(texts)
    role = "system" if message.role == "developer" else message.role
    extra = {k: v for k, v in (message.model_extra or {}).items()
             if k in ("tool_calls", "tool_call_id", "name")}  # fmt: skip
    if extra:
        return {"role": role, "content": content, **extra}
    return {"role": role, "content": content or ""}


def _completion(reply: Reply, model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{reply.message_id or uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": reply.text or (None if reply.tool_calls else ""),
                    **(
                        {"tool_calls": [_call(c) for c in reply.tool_calls]}
                        if reply.tool_calls
                        else {}
                    ),
                },
                "finish_reason": reply.finish_reason or "stop",
            }
        ],
        "usage": _usage(reply),
    }


def _call(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": call.id, "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }  # fmt: skip
    return {"index": index, **found} if index is not None else found


def _usage(reply: Reply) -> dict[str, int]:
    u = reply.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    }


async def prime(
    started: Awaitable[AsyncStream], ticket: Ticket
) -> tuple[AsyncIterator[Event], Event, AsyncStream]:
    """The stream's first event, before any byte is sent: what fails until then (checks,
    the provider refusing) fails with a real HTTP status, and settles the ticket."""
    try:
        stream = await started
    except BaseException as exc:
        await ticket.fail(exc)
        raise
    events = stream.events()
    try:
        first = await events.__anext__()
        if type(first) is ErrorEvent:
            raise error_from(first)
    except BaseException as exc:
        await stream.aclose()
        await ticket.fail(exc)
        raise
    return events, first, stream


async def _sse(
    stream: AsyncStream,
    events: AsyncIterator[Event],
    first: Event,
    model: str,
    include_usage: bool,
    ticket: Ticket,
) -> AsyncIterator[bytes]:
    """The turn as OpenAI's chunks. A failure after the first byte is one error frame in
    the envelope, then `[DONE]`; the partial answer is stored as such."""
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}  # fmt: skip

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> bytes:
        body = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps({**body, **more}, separators=(",", ":")).encode() + b"\n\n"

    # The opening frame goes out in one write with the first event's: one send, not two,
    # before the first token reaches the client.
    opening = chunk({"role": "assistant", "content": ""})
    calls = 0
    try:
        async for event in _chain(first, events):
            ticket.learn(event)
            out = b""
            if type(event) is TextDelta:
                out = chunk({"content": event.text})
            elif type(event) is ToolCallEvent:  # each call whole, by its index
                out = chunk({"tool_calls": [_call(event.call, calls)]})
                calls += 1
            elif type(event) is Done:
                reply = event.reply
                out = chunk({}, reply.finish_reason or "stop")
                if include_usage:
                    body = {**head, "choices": [], "usage": _usage(reply)}
                    out += b"data: " + json.dumps(body).encode() + b"\n\n"
            elif type(event) is ErrorEvent:
                out = errors.sse_error(error_from(event))
            if opening or out:
                yield opening + out
                opening = b""
            if type(event) is ErrorEvent:
                break
    except ChinwagError as exc:
        yield opening + errors.sse_error(exc)
        opening = b""
    finally:
        await stream.aclose()
        await ticket.settle()
    yield opening + b"data: [DONE]\n\n"


async def _chain(first: Event, rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    yield first
    async for event in rest:
        yield event


__all__ = ["Completions", "prime", "router"]
