"""Conversations: a user's threads with their bots, stored, branched, exported, imported."""

from __future__ import annotations

import base64
import builtins
import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Unpack, overload

from pydantic import ValidationError

from chinwag import attachments, checks
from chinwag.errors import InputError
from chinwag.streams import AsyncStream, complete
from chinwag.types import Bot, Conversation, Message, Reply

if TYPE_CHECKING:
    from chinwag.backend import Backend
    from chinwag.engine import Engine
    from chinwag.plan import TurnOptions
    from chinwag.store import Thread


class Turns:
    """What both places' conversations APIs do alike: turns on a conversation (retry,
    edit) run on the client's backend, and `latest` over `list`."""

    _backend: Backend

    if TYPE_CHECKING:  # each place lists in its own way

        async def list(
            self,
            *,
            limit: int = 50,
            offset: int = 0,
            query: str | None = None,
            user: str | int | None = None,
        ) -> builtins.list[Conversation]: ...

    async def latest(self, *, user: str | int | None = None) -> Conversation | None:
        """The conversation with the newest activity, if there is one."""
        found = await self.list(limit=1, user=user)
        return found[0] if found else None

    @overload
    async def retry(
        self,
        conversation_id: str,
        *,
        stream: Literal[False] = False,
        **options: Unpack[TurnOptions],
    ) -> Reply: ...

    @overload
    async def retry(
        self, conversation_id: str, *, stream: Literal[True], **options: Unpack[TurnOptions]
    ) -> AsyncStream: ...

    async def retry(
        self, conversation_id: str, *, stream: bool = False, **options: Unpack[TurnOptions]
    ) -> Reply | AsyncStream:
        """Answer the conversation's last question again; the old answer stays on its branch.
        With stream=True, the answer as it comes (an AsyncStream)."""
        if stream:
            return self._retry_stream(conversation_id, options)
        turn = self._backend.turn(retry=True, stream=False, conversation=conversation_id, **options)
        return await complete(turn)

    def _retry_stream(self, conversation_id: str, options: Mapping[str, Any]) -> AsyncStream:
        return AsyncStream(self._backend.turn(retry=True, conversation=conversation_id, **options))

    @overload
    async def edit(
        self,
        message_id: str,
        text: str,
        *,
        stream: Literal[False] = False,
        **options: Unpack[TurnOptions],
    ) -> Reply: ...

    @overload
    async def edit(
        self, message_id: str, text: str, *, stream: Literal[True], **options: Unpack[TurnOptions]
    ) -> AsyncStream: ...

    async def edit(
        self, message_id: str, text: str, *, stream: bool = False, **options: Unpack[TurnOptions]
    ) -> Reply | AsyncStream:
        """Ask `text` instead of an earlier question: a new branch from there, answered.
        With stream=True, the answer as it comes (an AsyncStream)."""
        if stream:
            return self._edit_stream(message_id, text, options)
        return await complete(self._backend.turn(text, edit=message_id, stream=False, **options))

    def _edit_stream(self, message_id: str, text: str, options: Mapping[str, Any]) -> AsyncStream:
        return AsyncStream(self._backend.turn(text, edit=message_id, **options))


class Conversations(Turns):
    """The user's stored conversations (`client.conversations`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = self._backend = engine

    async def create(
        self,
        *,
        bot: str | Bot | None = None,
        system: str | None = None,
        title: str | None = None,
        user: str | int | None = None,
    ) -> Conversation:
        """An empty conversation with a bot, and a system prompt of its own if given."""
        checks.optional_text(system, "system")
        checks.optional_text(title, "title")
        store, uid, name = await self._engine.scope(user, create=True)
        chosen = await self._engine.bot(bot, uid)
        return await store.create_conversation(
            uid, name, bot_uid=chosen.uid, system_prompt=system, title=title
        )

    async def list(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        query: str | None = None,
        user: str | int | None = None,
    ) -> builtins.list[Conversation]:
        """Conversations, newest activity first: id, title, bot and timestamps; with `query`,
        those whose title or messages hold it."""
        limit, offset = checks.count(limit, "limit"), checks.count(offset, "offset")
        checks.optional_text(query, "query")
        store, uid, name = await self._engine.scope(user)
        return await store.list_conversations(uid, name, limit=limit, offset=offset, query=query)

    async def get(self, conversation_id: str, *, user: str | int | None = None) -> Conversation:
        checks.identifier(conversation_id, "conversation_id")
        store, uid, name = await self._engine.scope(user)
        return await store.conversation(uid, name, conversation_id)

    async def history(
        self, conversation_id: str, *, user: str | int | None = None
    ) -> builtins.list[Message]:
        """The messages of the conversation's current branch, oldest first."""
        return (await self._thread(conversation_id, user)).messages

    async def delete(self, conversation_id: str, *, user: str | int | None = None) -> None:
        """Delete the conversation and its messages."""
        checks.identifier(conversation_id, "conversation_id")
        store, uid, _ = await self._engine.scope(user)
        await store.delete_conversation(uid, conversation_id)

    async def rename(
        self, conversation_id: str, title: str, *, user: str | int | None = None
    ) -> Conversation:
        checks.identifier(conversation_id, "conversation_id")
        checks.text(title, "title")
        store, uid, name = await self._engine.scope(user)
        return await store.rename_conversation(uid, name, conversation_id, title)

    async def set_system(
        self, conversation_id: str, system: str | None, *, user: str | int | None = None
    ) -> Conversation:
        """The conversation's own system prompt (None: its bot's, and so on down)."""
        checks.identifier(conversation_id, "conversation_id")
        checks.optional_text(system, "system")
        store, uid, name = await self._engine.scope(user)
        return await store.set_system_prompt(uid, name, conversation_id, system)

    async def switch_branch(
        self, conversation_id: str, message_id: str, *, user: str | int | None = None
    ) -> builtins.list[Message]:
        """Make the branch through `message_id` (an answer or question on another branch)
        current, down to its newest answer; the messages of that branch, oldest first."""
        checks.identifier(conversation_id, "conversation_id")
        checks.identifier(message_id, "message_id")
        store, uid, name = await self._engine.scope(user)
        return (await store.show_branch(uid, name, conversation_id, message_id)).messages

    async def export(
        self, conversation_id: str, *, format: str = "json", user: str | int | None = None
    ) -> str:
        """The conversation as JSON (every branch; import_json reads it back exactly) or as
        Markdown (the current branch, for people)."""
        if format == "json":
            checks.identifier(conversation_id, "conversation_id")
            store, uid, name = await self._engine.scope(user)
            data = await store.export_conversation(uid, name, conversation_id)
            shas = {f["sha256"] for m in data["messages"] for f in m["attachments"]}
            if shas:  # the files' bytes, once each, so that an import restores them
                found = await store.blobs(uid, shas)
                data["files"] = {sha: base64.b64encode(found[sha]).decode() for sha in sorted(shas)}
            return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        if format in ("md", "markdown"):
            return markdown(await self._thread(conversation_id, user))
        raise InputError(f"Unknown export format {format!r}: use json or markdown.")

    async def import_json(self, text: str, *, user: str | int | None = None) -> Conversation:
        """Store a conversation exported as JSON, exactly as it was."""
        data = parse_export(text)
        files = _exported_files(data)
        most = self._engine.config.settings.attachments.max_files
        for m in data["messages"]:
            carried = m.get("attachments") if isinstance(m, dict) else None
            if isinstance(carried, list) and len(carried) > most:
                raise InputError(
                    f"Message {str(m.get('id'))[:40]!r} carries {len(carried):,} files, more "
                    f"than attachments.max_files ({most}) lets a question carry."
                )
        store, uid, name = await self._engine.scope(user, create=True)
        try:
            return await store.import_conversation(uid, name, data, files)
        except ValidationError as exc:
            raise InputError(f"Not a chinwag conversation export: {checks.problem(exc)}") from None

    async def attachment(self, sha256: str, *, user: str | int | None = None) -> bytes:
        """The bytes of a file attached to one of the user's messages, by the sha256 that
        `history` shows in each message's `attachments`."""
        checks.identifier(sha256, "sha256")
        store, uid, _ = await self._engine.scope(user)
        return (await store.attachment(uid, sha256))[1]

    async def generate_title(
        self, conversation_id: str, *, user: str | int | None = None
    ) -> Conversation:
        """Have the bot's model (or title_bot) title the conversation now."""
        from chinwag.titles import title_now

        checks.identifier(conversation_id, "conversation_id")
        _, uid, name = await self._engine.scope(user)
        return await title_now(self._engine, uid, name, conversation_id)

    async def _thread(self, conversation_id: str, user: str | int | None) -> Thread:
        checks.identifier(conversation_id, "conversation_id")
        store, uid, name = await self._engine.scope(user)
        return await store.thread(uid, name, conversation_id, spent=True)


def markdown(thread: Thread) -> str:
    """A conversation's current branch for people to read."""
    from chinwag.prices import money

    conversation = thread.conversation
    lines = [f"# {conversation.title or 'Untitled conversation'}", ""]
    if conversation.cost != 0 or conversation.unpriced:  # free (or unanswered): not said
        lines += [f"*Cost: {money(conversation.cost, conversation.unpriced)}*", ""]
    for m in thread.messages:
        who = "You" if m.role == "user" else f"Assistant ({m.model or 'unknown model'})"
        note = "" if m.status == "complete" else f" *[{m.status}]*"
        lines += [f"**{who}**{note}:", "", m.content, ""]
        if m.attachments:
            lines += [f"*Attached: {attachments.shown(m.attachments)}*", ""]
    return "\n".join(lines)


def _exported_files(data: dict[str, Any]) -> dict[str, bytes]:
    """An export's files (base64 by sha256), each checked against its sha256, and its
    messages' attachments typed as chinwag types them (an edited export cannot make text
    an image)."""
    raw = data.get("files") or {}
    if not isinstance(raw, dict):
        raise InputError("Not a chinwag conversation export: 'files' must be an object.")
    files = {sha: attachments.decode(b64, f"files[{sha!r}]") for sha, b64 in raw.items()}
    for sha, blob in files.items():
        if hashlib.sha256(blob).hexdigest() != sha:
            raise InputError(f"The export's file {sha} does not match its sha256: it is damaged.")
    for m in data["messages"]:
        for f in m.get("attachments") or []:
            if isinstance(f, dict) and f.get("sha256") in files:
                name = attachments.file_name(str(f.get("name")), "An attachment's name")
                blob = files[f["sha256"]]
                f.update(name=name, media_type=attachments.media_type(name, blob), size=len(blob))
    return files


def parse_export(text: str) -> dict[str, Any]:
    """A JSON export, checked for shape and for what a database can store."""
    try:
        data = json.loads(checks.text(text, "The export"))
        if not isinstance(data, dict) or "conversation" not in data or "messages" not in data:
            raise ValueError("expected an object with 'conversation' and 'messages'")
        if not isinstance(data["conversation"], dict):
            raise ValueError("'conversation' must be an object")
        messages = data["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise ValueError("'messages' must be a list of objects")
        leaf = data.get("current_message_id")
        if leaf is not None and not isinstance(leaf, str):
            raise ValueError("'current_message_id' must be a message id or null")
        checks.storable(data)
    except RecursionError:
        raise InputError("Not a chinwag conversation export: nested too deeply.") from None
    except ValueError as exc:
        raise InputError(f"Not a chinwag conversation export: {exc}.") from None
    return data


__all__ = ["Conversations", "Turns", "markdown", "parse_export"]
