"""chinwag's own API under /api/v1: the seeds' operations over HTTP, in chinwag's words.

Each route checks, authenticates (one dependency) and calls the client as the caller's
user; ownership is filtered in the store's SQL, so another user's id reads as a missing
one (404). Turns stream chinwag's typed events as SSE, or return the Reply as JSON.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from chinwag import attachments
from chinwag.accounts import digest
from chinwag.client.aio import AsyncClient
from chinwag.errors import ChinwagError, InputError
from chinwag.server import sessions
from chinwag.server.auth import Caller, caller, tables
from chinwag.server.limits import Ticket, ticket_for
from chinwag.server.openai_api import prime
from chinwag.streams import AsyncStream
from chinwag.types import (
    ApiKey,
    Bot,
    Conversation,
    Event,
    GenerationParams,
    Health,
    Message,
    NewKey,
    Reply,
    StatisticItem,
    Statistics,
    StatisticTotal,
    User,
)
from chinwag.version import __version__

router = APIRouter(prefix="/api/v1", tags=["chinwag API"])
Who = Annotated[Caller, Depends(caller)]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request"},
    401: {"description": "No valid key"},
    404: {"description": "No such thing for this user"},
    429: {"description": "A limit of the key"},
}


def _client(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.client
    return client


# -- health -------------------------------------------------------------------------------


class PublicHealth(BaseModel):
    ok: bool
    version: str


# Seconds an answer of the open health check is reused: a check asks every provider, and
# callers without a key must not make the server call its providers at their pace.
HEALTH_TTL = 5.0


class _LastHealth:
    def __init__(self) -> None:
        self.lock = anyio.Lock()
        self.checked = -math.inf
        self.ok = False


@router.get("/health", response_model=PublicHealth, summary="Up or not (no key needed)")
async def health(request: Request) -> PublicHealth:
    """Whether the server can answer: its store and default provider, checked at most
    every few seconds. Nothing private."""
    state = request.app.state
    last: _LastHealth | None = getattr(state, "last_health", None)
    if last is None:
        last = state.last_health = _LastHealth()
    async with last.lock:  # one check at a time; the others take its answer
        if time.monotonic() - last.checked > HEALTH_TTL:
            last.ok = (await _client(request).health()).ok
            last.checked = time.monotonic()
    return PublicHealth(ok=last.ok, version=__version__)


class Me(BaseModel):
    user: str
    admin: bool
    default_bot: str


@router.get("/me", response_model=Me, responses=ERRORS)
async def me(request: Request, who: Who) -> Me:
    """Who the key acts as, and the bot a turn gets when it names none."""
    return Me(user=who.user, admin=who.admin, default_bot=request.app.state.config.settings.bot)


@router.get("/health/details", response_model=Health, responses=ERRORS)
async def health_details(request: Request, who: Who) -> Health:
    """The full report: providers, the store, broken bots and plugins (admins only)."""
    _admin(who, "read the server's details")
    return await _client(request).health()


# -- bots ---------------------------------------------------------------------------------


class BotFields(BaseModel):
    """A bot's fields; on create, name (or slug) is enough."""

    model_config = ConfigDict(extra="forbid")

    uid: str | None = None
    slug: str | None = None
    name: str | None = None
    description: str | None = None
    provider: str | None = None
    model: str | None = None
    system_prompt: str | None = None
    params: GenerationParams | None = None
    tools: list[str] | None = None
    search: bool | None = None
    welcome_message: str | None = None
    avatar_url: str | None = None

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, exclude_none=True)


@router.get("/bots", response_model=list[Bot], responses=ERRORS)
async def list_bots(request: Request, who: Who) -> list[Bot]:
    """Every bot the user can use: built-in, the server's files, and the user's own."""
    return await _client(request).bots.list(user=who.user)


@router.get("/bots/{key}", response_model=Bot, responses=ERRORS)
async def get_bot(key: str, request: Request, who: Who) -> Bot:
    """A bot by uid, slug or name."""
    return await _client(request).bots.find(key, user=who.user)


@router.post("/bots", response_model=Bot, status_code=201, responses={**ERRORS, 409: {}})
async def create_bot(fields: BotFields, request: Request, who: Who) -> Bot:
    return await _client(request).bots.create(user=who.user, **fields.given())


@router.patch("/bots/{key}", response_model=Bot, responses={**ERRORS, 409: {}})
async def update_bot(key: str, fields: BotFields, request: Request, who: Who) -> Bot:
    """Change fields of one of the user's own bots."""
    return await _client(request).bots.update(key, user=who.user, **fields.given())


@router.delete("/bots/{key}", status_code=204, responses=ERRORS)
async def delete_bot(key: str, request: Request, who: Who) -> Response:
    await _client(request).bots.delete(key, user=who.user)
    return Response(status_code=204)


# -- conversations ------------------------------------------------------------------------


class NewConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bot: str | None = None
    system: str | None = None
    title: str | None = None


class ConversationChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = None
    system_prompt: str | None = None


@router.get("/conversations", response_model=list[Conversation], responses=ERRORS)
async def list_conversations(
    request: Request,
    who: Who,
    limit: Annotated[int, Query(ge=0, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    q: Annotated[str | None, Query(max_length=500, description="Search titles and text")] = None,
) -> list[Conversation]:
    """The user's conversations, newest activity first."""
    return await _client(request).conversations.list(
        limit=limit, offset=offset, query=q, user=who.user
    )


@router.post("/conversations", response_model=Conversation, status_code=201, responses=ERRORS)
async def create_conversation(body: NewConversation, request: Request, who: Who) -> Conversation:
    return await _client(request).conversations.create(
        bot=body.bot, system=body.system, title=body.title, user=who.user
    )


@router.get("/conversations/{cid}", response_model=Conversation, responses=ERRORS)
async def get_conversation(cid: str, request: Request, who: Who) -> Conversation:
    return await _client(request).conversations.get(cid, user=who.user)


@router.get("/conversations/{cid}/messages", response_model=list[Message], responses=ERRORS)
async def conversation_messages(
    cid: str,
    request: Request,
    who: Who,
    all: Annotated[bool, Query(description="Every branch, not just the current one")] = False,
) -> list[Message]:
    """The current branch, oldest first; with all=true, every message of every branch."""
    client = _client(request)
    if not all:
        return await client.conversations.history(cid, user=who.user)
    exported = json.loads(await client.conversations.export(cid, user=who.user))
    return [Message.model_validate(m) for m in exported["messages"]]


@router.patch("/conversations/{cid}", response_model=Conversation, responses=ERRORS)
async def change_conversation(
    cid: str, body: ConversationChange, request: Request, who: Who
) -> Conversation:
    """A new title and/or system prompt (a null system_prompt removes it)."""
    client = _client(request)
    changed = await client.conversations.get(cid, user=who.user)
    if body.title is not None:
        changed = await client.conversations.rename(cid, body.title, user=who.user)
    if "system_prompt" in body.model_fields_set:
        changed = await client.conversations.set_system(cid, body.system_prompt, user=who.user)
    return changed


@router.post(
    "/conversations/import",
    response_model=Conversation,
    status_code=201,
    responses={**ERRORS, 409: {}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def import_conversation(request: Request, who: Who) -> Conversation:
    """Store a conversation exported as JSON, exactly as it was (its ids too)."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("The export is not UTF-8 text.") from None
    return await _client(request).conversations.import_json(text, user=who.user)


@router.delete("/conversations/{cid}", status_code=204, responses=ERRORS)
async def delete_conversation(cid: str, request: Request, who: Who) -> Response:
    await _client(request).conversations.delete(cid, user=who.user)
    return Response(status_code=204)


@router.post("/conversations/{cid}/title", response_model=Conversation, responses=ERRORS)
async def generate_title(cid: str, request: Request, who: Who) -> Conversation:
    """Write the conversation's title now."""
    return await _client(request).conversations.generate_title(cid, user=who.user)


class Current(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: str = Field(min_length=1, max_length=64)


@router.post(
    "/conversations/{cid}/current", response_model=list[Message], responses={**ERRORS, 409: {}}
)
async def switch_branch(cid: str, body: Current, request: Request, who: Who) -> list[Message]:
    """Show another branch: the one through `message_id`, down to its newest answer. The
    messages of that branch, oldest first."""
    return await _client(request).conversations.switch_branch(cid, body.message_id, user=who.user)


_EXPORTS = {"json": ("application/json", "json"), "markdown": ("text/markdown", "md")}


@router.get(
    "/conversations/{cid}/export",
    responses={**ERRORS, 200: {"content": {t: {} for t, _ in _EXPORTS.values()}}},
)
async def export_conversation(
    cid: str,
    request: Request,
    who: Who,
    format: Annotated[Literal["json", "markdown"], Query(description="or markdown")] = "json",
) -> Response:
    """The conversation as a file: JSON (every branch; POST it to /conversations/import, or
    `chinwag conversations import` it, to restore it exactly) or Markdown (the current
    branch, for people)."""
    text = await _client(request).conversations.export(cid, format=format, user=who.user)
    media, suffix = _EXPORTS[format]
    return Response(
        text,
        media_type=f"{media}; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="chinwag-{cid}.{suffix}"'},
    )


@router.get(
    "/attachments/{sha256}",
    responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}}},
)
async def attachment(sha256: str, request: Request, who: Who) -> Response:
    """A file attached to one of the user's messages, by its sha256 (as the messages'
    `attachments` show it), with its media type; another user's file is 404."""
    store, uid, _ = await _client(request)._engine.scope(who.user)  # its name and type too
    info, data = await store.attachment(uid, sha256)
    return Response(
        data,
        media_type=info.media_type,
        headers={"content-disposition": f"attachment; filename*=UTF-8''{quote(info.name)}"},
    )


# -- turns --------------------------------------------------------------------------------


class FileBody(BaseModel):
    """A file attached to the question; the server types it (text or image) as the
    library does, from its name and bytes."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    data: str = Field(description="The file's bytes, base64")


class TurnBody(BaseModel):
    """One turn's options, as the library takes them."""

    model_config = ConfigDict(extra="forbid")

    bot: str | None = None
    provider: str | None = Field(default=None, description="The bot on this provider instead")
    model: str | None = Field(default=None, description="The bot on this model instead")
    system: str | None = None
    model_prompts: dict[str, str | None] | None = Field(
        default=None,
        max_length=1000,
        description="System prompts by model, above the server's own (set_system_prompt)",
    )
    language: str | None = None
    end_user: str | None = Field(default=None, description="Stored with the question; not a scope")
    max_words: int | None = None
    search: bool | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    files: list[FileBody] | None = Field(
        default=None, max_length=1000, description="Files for the question (attachments.*)"
    )
    stream: bool = False

    def options(self) -> dict[str, Any]:
        skip = {"stream", "prompt", "messages", "text", "use_search", "files"}
        options = self.model_dump(exclude=skip, exclude_none=True)
        if self.files:
            options["files"] = [
                (f.name, attachments.decode(f.data, f"files[{i}].data"))
                for i, f in enumerate(self.files)
            ]
        return options


class Ask(TurnBody):
    prompt: str = Field(min_length=1)


class Edit(TurnBody):
    text: str = Field(min_length=1)


class Chat(TurnBody):
    """aBLT's one-shot chat: a prompt or a message list, with a bot (uid or slug)."""

    prompt: str | None = None
    messages: list[dict[str, Any]] | None = Field(default=None, max_length=10_000)
    use_search: bool | None = Field(default=None, description="aBLT's name for search")
    conversation: str | None = Field(default=None, description="Go on with this one")


@router.post("/conversations/{cid}/messages", response_model=Reply, responses=ERRORS)
async def ask(cid: str, body: Ask, request: Request, who: Who) -> Any:
    """Ask in a conversation: the Reply, or with stream=true its events as SSE."""
    client = _client(request)
    options = {**body.options(), "conversation": cid, "user": who.user}
    ticket = ticket_for(request, who, options)
    if body.stream:
        return await _streamed(_started(client.stream(body.prompt, **options)), ticket)
    return await ticket.run(client.ask(body.prompt, **options))


@router.post("/conversations/{cid}/retry", response_model=Reply, responses=ERRORS)
async def retry(cid: str, body: TurnBody, request: Request, who: Who) -> Any:
    """Answer the conversation's last question again, on a new branch (stream=true: SSE)."""
    conversations = _client(request).conversations
    options = {**body.options(), "user": who.user}
    ticket = ticket_for(request, who, options)
    if body.stream:
        return await _streamed(conversations.retry(cid, stream=True, **options), ticket)
    return await ticket.run(conversations.retry(cid, **options))


@router.post("/messages/{mid}/edit", response_model=Reply, responses=ERRORS)
async def edit(mid: str, body: Edit, request: Request, who: Who) -> Any:
    """Ask `text` instead of an earlier question: a new branch from there, answered
    (stream=true: SSE)."""
    conversations = _client(request).conversations
    options = {**body.options(), "user": who.user}
    ticket = ticket_for(request, who, options)
    if body.stream:
        return await _streamed(conversations.edit(mid, body.text, stream=True, **options), ticket)
    return await ticket.run(conversations.edit(mid, body.text, **options))


@router.post("/chat", response_model=Reply, responses=ERRORS)
async def chat(body: Chat, request: Request, who: Who) -> Any:
    """A prompt, or a message list, to a bot: stored as a new conversation."""
    client = _client(request)
    options = {**body.options(), "user": who.user}
    if body.use_search is not None:
        options["search"] = body.use_search
    if (body.prompt is None) == (body.messages is None):
        raise InputError("Send either a prompt or messages.")
    ticket = ticket_for(request, who, options)
    if body.stream:
        if body.prompt is not None:
            return await _streamed(_started(client.stream(body.prompt, **options)), ticket)
        return await _streamed(client.chat(body.messages or [], stream=True, **options), ticket)
    if body.prompt is not None:
        return await ticket.run(client.ask(body.prompt, **options))
    return await ticket.run(client.chat(body.messages or [], **options))


async def _started(stream: AsyncStream) -> AsyncStream:
    return stream


async def _streamed(started: Awaitable[AsyncStream], ticket: Ticket) -> StreamingResponse:
    """A turn's typed events as SSE, each `data: <event JSON>`, then `data: [DONE]`."""
    events, first, stream = await prime(started, ticket)

    async def encode() -> AsyncIterator[bytes]:
        try:
            ticket.learn(first)
            yield _event(first)
            async for event in events:
                ticket.learn(event)
                yield _event(event)
        except ChinwagError:
            pass  # raised after its ErrorEvent, which was sent
        finally:
            await stream.aclose()
            await ticket.settle()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(
        encode(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )


def _event(event: Event) -> bytes:
    return b"data: " + event.model_dump_json().encode() + b"\n\n"


# -- statistics ---------------------------------------------------------------------------


def _admin(who: Caller, to: str) -> None:
    if not who.admin:
        raise HTTPException(403, f"Only an admin key may {to}.")


def _user_for_stats(who: Caller, user: str | None) -> str:
    if user is None or user == who.user:
        return who.user
    _admin(
        who, f"read another user's statistics (user={user!r:.60}; this key acts as {who.user!r})"
    )
    return user


@router.get("/stats/usage", response_model=Statistics, responses=ERRORS)
async def stats_usage(
    request: Request,
    who: Who,
    start_date: date | None = None,
    end_date: date | None = None,
    bot: str | None = None,
    user: str | None = None,
    empty_days: bool = True,
    model: str | None = None,
) -> Statistics:
    """One item per day, and the total, in tokens and words (an admin may pass user=);
    `empty_days=false` lists only the days with use, over any span; `bot` or `model`, one
    bot's or one model's use only."""
    return await _client(request).stats.usage(
        start_date=start_date,
        end_date=end_date,
        bot=bot,
        user=_user_for_stats(who, user),
        empty_days=empty_days,
        model=model,
    )


@router.get("/stats/day", response_model=StatisticItem, responses=ERRORS)
async def stats_day(
    request: Request, who: Who, date: date | None = None, user: str | None = None
) -> StatisticItem:
    return await _client(request).stats.day(date, user=_user_for_stats(who, user))


@router.get("/stats/total", response_model=StatisticTotal, responses=ERRORS)
async def stats_total(
    request: Request,
    who: Who,
    start_date: date | None = None,
    end_date: date | None = None,
    user: str | None = None,
) -> StatisticTotal:
    return await _client(request).stats.total(
        start_date=start_date, end_date=end_date, user=_user_for_stats(who, user)
    )


# -- web sessions -------------------------------------------------------------------------


class SessionInfo(BaseModel):
    """Who the caller is, and how they are signed in."""

    user: str
    admin: bool
    signed_in: bool = Field(description="Whether a session cookie authenticated the request")
    expires_at: datetime | None = None


@router.post("/session", response_model=SessionInfo, status_code=201, responses=ERRORS)
async def sign_in(request: Request, who: Who) -> JSONResponse:
    """Sign the web page in: the API key (as for any request) buys a session cookie, which
    then acts as that key (its user, its limits) until it expires or the key is revoked."""
    if who.holder is None:
        raise InputError("This server has no API keys: its page opens without signing in.")
    if who.session is not None:
        raise InputError("Sign in with an API key (Authorization: Bearer KEY), not a session.")
    token = sessions.new_token()
    stamp = datetime.now(UTC)
    hours = request.app.state.config.settings.server.session_hours
    expires = stamp + timedelta(hours=hours)
    await (await tables(request)).open_session(
        digest(token), who.holder, stamp=stamp, expires=expires
    )
    info = SessionInfo(user=who.user, admin=who.admin, signed_in=True, expires_at=expires)
    response = JSONResponse(info.model_dump(mode="json"), status_code=201)
    sessions.set_cookies(response, request, token, hours * 3600)
    return response


@router.get("/session", response_model=SessionInfo, responses=ERRORS)
async def session_info(who: Who) -> SessionInfo:
    return SessionInfo(user=who.user, admin=who.admin, signed_in=who.session is not None)


@router.delete("/session", status_code=204, responses=ERRORS)
async def sign_out(request: Request, who: Who) -> Response:
    """End the page's session, on every worker; its cookies are cleared."""
    if who.session is None:
        raise InputError("Not signed in with a session: there is nothing to sign out of.")
    await (await tables(request)).end_session(digest(who.session))
    response = Response(status_code=204)
    sessions.clear_cookies(response, request)
    return response


# -- users and keys -----------------------------------------------------------------------


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    admin: bool = False


class KeyFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    tokens_per_day: int | None = Field(default=None, ge=1)
    # Strict: true is not $1. Numbers or their text, checked to the micro-dollar.
    cost_per_day: StrictInt | StrictFloat | StrictStr | None = Field(
        default=None, description="A money budget: US dollars a day (UTC), above 0"
    )
    cost_per_month: StrictInt | StrictFloat | StrictStr | None = Field(
        default=None, description="A money budget: US dollars a calendar month (UTC), above 0"
    )
    expires: datetime | date | None = None


@router.get("/users", response_model=list[User], responses={**ERRORS, 403: {}})
async def list_users(request: Request, who: Who) -> list[User]:
    """Every user (admins only)."""
    _admin(who, "list users")
    return await _client(request).accounts.list_users()


@router.post("/users", response_model=User, status_code=201, responses={**ERRORS, 403: {}})
async def add_user(body: NewUser, request: Request, who: Who) -> User:
    """Add a user (admins only)."""
    _admin(who, "add users")
    return await _client(request).accounts.add_user(body.name, admin=body.admin)


@router.get("/keys", response_model=list[ApiKey], responses={**ERRORS, 403: {}})
async def list_keys(request: Request, who: Who, user: str | None = None) -> list[ApiKey]:
    """The caller's keys (never the secrets); an admin may pass user=, or see all."""
    if not who.admin:
        if user not in (None, who.user):
            _admin(who, "list another user's keys")
        user = who.user
    return await _client(request).accounts.list_keys(user=user)


@router.post("/keys", response_model=NewKey, status_code=201, responses={**ERRORS, 403: {}})
async def create_key(body: KeyFields, request: Request, who: Who) -> NewKey:
    """Make a key for a user (admins only); its secret is in this answer and nowhere else."""
    _admin(who, "create keys")
    return await _client(request).accounts.create_key(
        body.user, name=body.name, rpm=body.rpm, tpm=body.tpm,
        tokens_per_day=body.tokens_per_day, cost_per_day=body.cost_per_day,
        cost_per_month=body.cost_per_month, expires=body.expires,
    )  # fmt: skip


@router.get("/keys/{key_id}", response_model=ApiKey, responses=ERRORS)
async def get_key(key_id: str, request: Request, who: Who) -> ApiKey:
    """One of the caller's keys (an admin: any key): its limits, budgets and state."""
    user = None if who.admin else who.user
    return await _client(request).accounts.get_key(key_id, user=user)


@router.delete("/keys/{key_id}", response_model=ApiKey, responses=ERRORS)
async def revoke_key(key_id: str, request: Request, who: Who) -> ApiKey:
    """Revoke one of the caller's keys (an admin: any key); it fails from the next request."""
    user = None if who.admin else who.user
    return await _client(request).accounts.revoke_key(key_id, user=user)


__all__ = ["router"]
