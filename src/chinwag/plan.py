"""Planning a turn: what the caller asked, checked, and everything resolved from it (bot,
branch, system prompt, history, tools) before anything is stored. No I/O here."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypedDict

from pydantic import ValidationError

from chinwag import attachments, checks
from chinwag.context import Entry
from chinwag.errors import InputError
from chinwag.providers.base import takes_images
from chinwag.types import Attachment, Bot, GenerationParams, Message

if TYPE_CHECKING:
    from chinwag.config import Config, ModelPrice
    from chinwag.providers import Provider
    from chinwag.store import Thread
    from chinwag.tools import Tool

_ROLES = ("system", "user", "assistant")
# What the model reads where a question got no answer (a crash, or a failed turn).
NO_ANSWER = "(No answer was given to this message: that turn was interrupted.)"


class TurnOptions(TypedDict, total=False):
    """Per-call overrides accepted by ask, stream and chat."""

    bot: str | Bot | None
    # The bot on another configured provider or model for this turn (its prompt, settings
    # and uid kept); a provider without a model: that provider's default model.
    provider: str | None
    model: str | None
    conversation: str | None
    system: str | None
    # Per-model system prompts above the config's models.<name>.system_prompt (what a
    # remote client's set_system_prompt sends; None for a model: none of its own).
    model_prompts: Mapping[str, str | None] | None
    temperature: float | None
    max_tokens: int | None
    top_p: float | None
    top_k: int | None
    stop: list[str] | None
    seed: int | None
    user: str | int | None
    language: str | None  # answer in this language (aBLT)
    max_words: int | None  # the model is told the budget; max_tokens follows from it
    search: bool | None  # web search for this turn (stored with it)
    # Whom the caller says it asks for (OpenAI's `user`): stored with the question for the
    # caller's records, never a scope (`user` is the one that scopes).
    end_user: str | None
    tools: Sequence[Callable[..., Any]] | None  # functions the model may call this turn
    keep: bool | None  # False: not stored as a conversation (its usage still counts)
    # OpenAI tool schemas the caller runs itself (the /v1 API): the model's calls come back
    # as ToolCallEvents and Reply.tool_calls, not run; with keep=False and messages only.
    tool_schemas: Sequence[Mapping[str, Any]] | None
    tool_choice: str | Mapping[str, Any] | None
    # Files for the question: paths, bytes or (name, bytes) pairs; text goes into the
    # prompt under its name, images to models that take them (chinwag.attachments).
    files: Sequence[str | os.PathLike[str] | bytes | tuple[str, bytes]] | None
    # The server's: counts the planned turn against an API key's limits, before anything
    # is stored or sent (it raises to refuse it). It returns the most tokens the answer may
    # use when the key's money budget caps a call that named no max_tokens.
    admit: Callable[[Plan], Awaitable[int | None]] | None


@dataclass(frozen=True, slots=True)
class Request:
    """What the caller asked for, checked."""

    prompt: str | None  # None only for a retry
    seed: tuple[Entry, ...]  # earlier turns of a message list (chat)
    seed_system: str | None
    stream: bool
    retry: bool
    edit: str | None
    options: Mapping[str, Any]
    keep: bool = True  # False: answer without storing the conversation (usage still counts)
    # The caller's message list as it is, tool calls and results included (tool_schemas).
    raw: tuple[dict[str, Any], ...] | None = None
    # The files of each message of the turn as given: the seed's, then the question's; ()
    # when there are none. The engine reads them (`with_files`) before it plans.
    given: tuple[tuple[attachments.Given, ...], ...] = ()
    attached: tuple[Attachment, ...] = ()  # the question's files, read
    data: Mapping[str, bytes] = field(default_factory=dict)  # the files' bytes, by sha256

    @property
    def conversation(self) -> str | None:
        found: str | None = self.options.get("conversation")
        return found


def request(
    prompt: Any,
    messages: Any,
    *,
    stream: bool,
    retry: bool,
    edit: Any,
    options: Mapping[str, Any],
    keep: bool = True,
) -> Request:
    """Check a turn's arguments: one clear InputError for anything wrong."""
    unknown = set(options) - set(TurnOptions.__annotations__)
    if unknown:
        known = sorted(TurnOptions.__annotations__)
        raise InputError(f"Unknown option(s) {sorted(unknown)}; known: {known}.")
    checked = checks.turn_options(options)
    seed: list[Entry] = []
    given: list[tuple[attachments.Given, ...]] = [()]
    files = checked.get("files") or ()
    if files and retry:
        raise InputError(
            "retry answers the stored question again, with the files it had: files= is for "
            "new questions (ask, stream, chat, edit)."
        )
    seed_system = None
    raw = None
    if checked.get("tool_schemas") is not None:
        if messages is None or keep:
            raise InputError(
                "tool_schemas (tools the caller runs) need a message list and keep=False: "
                "their calls and results live in the caller's messages."
            )
        if files:
            raise InputError(
                "files= cannot go with tool_schemas: attach them to a turn of its own."
            )
        raw, prompt = raw_messages(checks.messages(messages))
    elif messages is not None:
        if prompt is not None:
            raise InputError("Pass either a prompt or messages, not both.")
        seed_system, seed, prompt, given = split_messages(checks.messages(messages))
    given[-1] = (*given[-1], *files)
    if not retry:
        if prompt is None or (isinstance(prompt, str) and not prompt.strip() and not given[-1]):
            raise InputError("The prompt is empty: say something to the model.")
        checks.text(prompt, "The prompt")
    if edit is not None:
        checks.identifier(edit, "The message id to edit")
    if not keep and (retry or edit is not None or checked.get("conversation") is not None):
        raise InputError("A turn that is not kept cannot retry, edit or go on a conversation.")
    return Request(
        prompt, tuple(seed), seed_system, stream, retry, edit, checked, keep, raw,
        given=tuple(given) if any(given) else (),
    )  # fmt: skip


def with_files(request: Request, read: Sequence[Sequence[attachments.Upload]]) -> Request:
    """The request with its files read (`read` holds the files of each message in `given`)."""
    seed = tuple(
        entry._replace(files=tuple(u.info for u in found))
        for entry, found in zip(request.seed, read, strict=False)
    )
    data = {u.info.sha256: u.data for found in read for u in found}
    question = tuple(u.info for u in read[-1]) if read else ()
    return dataclasses.replace(request, seed=seed, attached=question, data=data)


def raw_messages(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[tuple[dict[str, Any], ...], str]:
    """A message list passed to the model as it is (tool calls and results included),
    checked for roles and text; and what stands for the prompt (the last message's text)."""
    raw: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role not in (*_ROLES, "tool") or not (content is None or isinstance(content, str)):
            raise InputError(
                f"messages[{i}] must have a role (system, user, assistant or tool) and text "
                f"content, got {dict(m)!r:.200}."
            )
        if content is not None:
            checks.text(content, f"messages[{i}]['content']")
        checks.storable(dict(m), f"messages[{i}]")
        raw.append(dict(m))
    if not raw:
        raise InputError("messages is empty: pass at least one {'role': 'user', ...} message.")
    return tuple(raw), raw[-1].get("content") or "(tool results)"


def split_messages(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[str | None, list[Entry], str, list[tuple[attachments.Given, ...]]]:
    """A message list's system prompt, earlier turns and final user prompt; and the files
    of each turn, the prompt's last (OpenAI's image_url and file parts)."""
    if not messages:
        raise InputError("messages is empty: pass at least one {'role': 'user', ...} message.")
    system: list[str] = []
    turns: list[Entry] = []
    given: list[tuple[attachments.Given, ...]] = []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role not in _ROLES or not isinstance(content, str | list):
            raise InputError(
                f"messages[{i}] must be {{'role': 'system'|'user'|'assistant', 'content': str "
                f"or a list of parts}}, got {dict(m)!r:.200}."
            )
        text, files = (content, ()) if isinstance(content, str) else _parts(content, i)
        checks.text(text, f"messages[{i}]['content']")
        if files and role != "user":
            raise InputError(f"messages[{i}]: only the user's messages may carry images or files.")
        if role == "system":
            system.append(text)
        else:
            turns.append(Entry(role, text))
            given.append(files)
    if not turns or turns[-1].role != "user":
        raise InputError("The last message must be the user's prompt (role 'user').")
    return ("\n\n".join(system) or None), turns[:-1], turns[-1].content, given


def _parts(content: list[Any], i: int) -> tuple[str, tuple[attachments.Given, ...]]:
    """A message's content parts: their text joined, and the files they carry."""
    texts: list[str] = []
    files: list[attachments.Given] = []
    for j, part in enumerate(content):
        what = f"messages[{i}]['content'][{j}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            texts.append(checks.text(part.get("text"), f"{what}['text']"))
        elif kind in ("image_url", "file"):
            files.append(attachments.from_part(part, what))
        else:
            raise InputError(
                f"{what} must be a text, image_url or file part, such as {{'type': 'text', "
                f"'text': 'Hi'}}, not {part!r:.80}."
            )
    return "".join(texts), tuple(files)


@dataclass(frozen=True, slots=True)
class Plan:
    """A turn resolved: who asks whom, where on which branch, with what context."""

    request: Request
    user_id: int
    user: str
    bot: Bot
    provider: Provider
    model: str
    params: GenerationParams
    prompt: str
    conversation_id: str | None  # None: a new conversation
    parent_id: str | None  # the question's parent
    leaf_id: str | None  # where the conversation was when planned
    busy: bool  # another turn is answering in the conversation now
    asked_id: str | None  # retry: the stored question answered again
    system: str | None  # without search results, which come later
    history: tuple[Entry, ...]
    files: tuple[Attachment, ...]  # the question's
    images: bool  # whether the provider takes image parts
    tools: Mapping[str, Tool]
    schemas: list[dict[str, Any]] | None
    search: bool
    meta: Mapping[str, Any]  # stored with the question
    window: int
    reserve: int  # tokens kept free for the answer
    price: ModelPrice | None  # the config's models.<name>.price; None: genai-prices' table

    @property
    def first_exchange(self) -> bool:
        return self.leaf_id is None


def make_plan(
    request: Request,
    *,
    config: Config,
    user_id: int,
    user: str,
    thread: Thread | None,
    bot: Bot,
    provider: Provider,
    model: str,
    tools: Sequence[Tool],
) -> Plan:
    """Resolve a checked request against what is stored; raises before anything is written."""
    options = request.options
    params = _params(bot, options)
    prompt, parent, asked, files = branch_point(request, thread)
    images = takes_images(provider, model)
    if not images:
        _refuse_images(provider, model, [*files, *(f for e in request.seed for f in e.files)])
    conv_system = request.seed_system
    if conv_system is None and thread is not None:
        conv_system = thread.conversation.system_prompt
    chosen = system_prompt(
        config, options.get("system"), conv_system, bot, model, options.get("model_prompts")
    )
    system = _with_chat_options(chosen, options)
    search = options.get("search")
    window = config.context_window(model, provider.context_window(model))
    meta = {
        k: options[k]
        for k in ("language", "max_words", "search", "end_user")
        if options.get(k) is not None
    }
    return Plan(
        request=request,
        user_id=user_id,
        user=user,
        bot=bot,
        provider=provider,
        model=model,
        params=params,
        prompt=prompt,
        conversation_id=thread.conversation.id if thread else None,
        parent_id=parent,
        leaf_id=thread.leaf_id if thread else None,
        busy=thread.busy if thread else False,
        asked_id=asked,
        system=system,
        history=tuple(history(thread.branch(parent) if thread else [], request.seed)),
        files=files,
        images=images,
        tools={t.name: t for t in tools},
        schemas=[t.schema() for t in tools] or _caller_schemas(options),
        search=bot.search if search is None else search,
        meta=meta,
        window=window,
        reserve=params.max_tokens or min(1024, window // 4),
        price=config.price(model),
    )


def capped(plan: Plan, max_tokens: int) -> Plan:
    """The plan with the answer held to `max_tokens`; in its request too, so that planning
    it again (after waiting for the conversation) keeps the cap. The context it fits stays
    the one admitted (its `reserve`)."""
    request = replace(plan.request, options={**plan.request.options, "max_tokens": max_tokens})
    return replace(plan, request=request, params=plan.params.merged(max_tokens=max_tokens))


def _caller_schemas(options: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    given = options.get("tool_schemas")
    return [dict(t) for t in given] if given else None


def _refuse_images(provider: Provider, model: str, files: Sequence[Attachment]) -> None:
    """A turn's own images are refused before anything is stored where they cannot go."""
    image = next((f for f in files if f.image), None)
    if image is None:
        return
    why = (
        f" (providers.{provider.name}.images is false)" if provider.settings.images is False else ""
    )
    raise InputError(
        f"The provider {provider.name!r} (model {model}) takes no images{why}, so {image.name} "
        "cannot be sent: ask a provider that does (an OpenAI-compatible one, with provider= "
        "or a bot on it), or attach text files only."
    )


def branch_point(
    request: Request, thread: Thread | None
) -> tuple[str, str | None, str | None, tuple[Attachment, ...]]:
    """The question, where it goes (its parent), for a retry the stored question answered
    again, and the question's files: after the current leaf, or on a new branch for retry
    and edit."""
    prompt, parent = request.prompt, thread.leaf_id if thread else None
    if request.retry:
        question = next(
            (m for m in reversed(thread.messages) if m.role == "user"), None
        ) if thread else None  # fmt: skip
        if question is None:
            raise InputError("retry needs a conversation with a question to answer again.")
        return question.content, question.parent_id, question.id, tuple(question.attachments)
    if request.edit is not None and thread is not None:
        original = thread.message(request.edit)
        if original is None or original.role != "user":
            raise InputError(
                f"Message {request.edit!r} is not a user message: only questions can be edited."
            )
        parent = original.parent_id
    assert prompt is not None
    return prompt, parent, None, request.attached


def history(branch: Sequence[Message], seed: Sequence[Entry]) -> list[Entry]:
    """The earlier turns the model reads: tool rounds left out (their answers carry what
    they found), and a note where a question got no answer, never two questions in a row."""
    out: list[Entry] = []
    for m in branch:
        if (not m.content and not m.attachments) or m.role == "tool" or "tool_calls" in m.meta:
            continue
        if m.role == "user" and out and out[-1].role == "user":
            out.append(Entry("assistant", NO_ANSWER))
        out.append(Entry(m.role, m.content, tuple(m.attachments)))
    if out and out[-1].role == "user":  # the new question comes next
        out.append(Entry("assistant", NO_ANSWER))
    out.extend(seed)  # a message list is sent as the caller wrote it
    return out


def system_prompt(
    config: Config,
    call: str | None,
    conversation: str | None,
    bot: Bot,
    model: str,
    model_prompts: Mapping[str, str | None] | None = None,
) -> str | None:
    """Precedence: the call's, then the conversation's, the bot's, the model's (the caller's
    `model_prompts`, then the config's), the config's."""
    for candidate in (call, conversation, bot.system_prompt):
        if candidate is not None:
            return candidate
    if model_prompts and model in model_prompts:
        return model_prompts[model] or config.settings.system_prompt
    per_model = config.settings.models.get(model)
    if per_model is not None and per_model.system_prompt is not None:
        return per_model.system_prompt
    return config.settings.system_prompt


def _params(bot: Bot, options: Mapping[str, Any]) -> GenerationParams:
    """The bot's sampling params with the call's on top; max_words bounds max_tokens."""
    try:
        params = bot.params.merged(
            **{name: options.get(name) for name in GenerationParams.model_fields}
        )
    except ValidationError as exc:
        raise InputError(f"Invalid {checks.problem(exc, value=True)}") from None
    max_words = options.get("max_words")
    if max_words is not None:
        if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words <= 0:
            raise InputError(f"max_words must be a positive whole number, not {max_words!r:.60}.")
        if params.max_tokens is None:
            # About 4/3 tokens a word in English, and room to finish the sentence.
            params = params.merged(max_tokens=math.ceil(max_words * 5 / 3) + 8)
    return params


def _with_chat_options(system: str | None, options: Mapping[str, Any]) -> str | None:
    """The system prompt with aBLT's language and word budget added."""
    extra: list[str] = []
    language = options.get("language")
    if language is not None:
        if not language.strip():
            raise InputError(f"language must name a language, like 'French', not {language!r}.")
        extra.append(f"Answer in {language.strip()}.")
    if options.get("max_words") is not None:
        extra.append(f"Answer in at most {options['max_words']} words.")
    if not extra:
        return system
    return "\n\n".join(part for part in (system, " ".join(extra)) if part)


__all__ = [
    "NO_ANSWER",
    "Plan",
    "Request",
    "TurnOptions",
    "capped",
    "make_plan",
    "request",
    "with_files",
]
