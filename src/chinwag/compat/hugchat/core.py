"""hugchat_api's HuggingChat, Bot and Message over chinwag's Client.

`HuggingChat().getBot(email, cookies, model)` gives a Bot whose conversations are chinwag's
own: stored, titled, searchable. In-process the login arguments are accepted and ignored;
against a chinwag server the cookies carry the key (the key itself, or {"api_key": KEY}),
which is who the Bot is. `model` names a chinwag bot (slug, uid or name) or a model of the
default bot. Calls that take `wait=False` return a `concurrent.futures.Future`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

from chinwag import checks
from chinwag.closing import Closing
from chinwag.compat import connect
from chinwag.errors import ChinwagError, InputError, NotFoundError

if TYPE_CHECKING:
    from chinwag.client.sync import Client
    from chinwag.config import Config
    from chinwag.plan import TurnOptions
    from chinwag.types import Event, Reply

T = TypeVar("T")


class ListBots:
    """The model names hugchat_api listed. With chinwag any bot or model name will do; these
    reach a provider that serves them under these names (vLLM, TGI, Ollama...)."""

    OPENASSISTENT_30B_XOR = "OpenAssistant/oasst-sft-6-llama-30b-xor"
    META_70B_HF = "meta-llama/Llama-2-70b-chat-hf"
    CODELLAMA_34B_HF = "codellama/CodeLlama-34b-Instruct-hf"
    FALCON_180B = "tiiuae/falcon-180B-chat"


@dataclass
class RequestData:
    """`custom_data` for one chat: sampling settings (huggingface.co/chat stopped honouring
    them; chinwag sends them to the provider) and web search."""

    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    web_search: bool | None = None


_SAMPLING = {"max_new_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p",
             "top_k": "top_k", "stop": "stop", "seed": "seed"}  # fmt: skip


def _custom(custom_data: Any) -> dict[str, Any]:
    """RequestData, or a mapping of its fields, as the turn's options."""
    if custom_data is None:
        return {}
    if isinstance(custom_data, RequestData):
        given = asdict(custom_data)
    elif isinstance(custom_data, Mapping):
        given = dict(custom_data)
        checks.known_keys(given, [*_SAMPLING, "web_search"], "custom_data")
    else:
        raise InputError(
            f"custom_data must be a RequestData or a dict of its fields, not {custom_data!r:.60}."
        )
    settings = {_SAMPLING[k]: v for k, v in given.items() if k in _SAMPLING and v is not None}
    options = checks.sampling(settings, "custom_data: ")
    if given.get("web_search") is not None:
        options["search"] = given["web_search"]
    return options


class Message:
    """One answer as it arrives: its text chunks, web search steps, and the final text."""

    def __init__(self, conversation_id: str | None, web_search_enabled: bool) -> None:
        self.conversation_id = conversation_id
        self.web_search_enabled = web_search_enabled
        self.error: ChinwagError | None = None
        self.done = False
        self.stream_text: list[str] = []
        self.final_text: str | None = None
        self.web_search_steps: list[dict[str, Any]] = []
        self.web_search_done = False
        self.reply: Reply | None = None  # chinwag's Reply (usage, ids), once done
        self._read_steps = 0

    def _take(self, event: Event) -> None:
        """Follow one event of the turn."""
        if event.type == "text":
            self.web_search_done = True
            self.stream_text.append(event.text)
        elif event.type == "search":
            self.web_search_steps.append(
                {
                    "type": event.step,
                    "query": event.query,
                    "sources": [s.model_dump() for s in event.results],
                    "error": event.error,
                }
            )
        elif event.type == "done":
            self.reply = event.reply
            self.final_text = event.reply.text
            self.done = True
        elif event.type == "error":
            self.reply = event.reply

    def setError(self, error: ChinwagError) -> None:
        self.error = error
        self.done = True

    def getConversation(self) -> str | None:
        return self.conversation_id

    def getText(self) -> list[str]:
        """The chunks so far (after a failure, the error is raised; they stay in stream_text)."""
        if self.error:
            raise self.error
        return self.stream_text

    def getFinalText(self) -> str | None:
        """The whole answer once done, else None; the turn's error if it failed."""
        if self.error:
            raise self.error
        return self.final_text

    def getWebSearchSteps(self) -> list[dict[str, Any]]:
        if self.error:
            raise self.error
        return self.web_search_steps

    def getWebSearchStep(self) -> dict[str, Any] | None:
        """The next web search step not read yet, or None."""
        if self.error:
            raise self.error
        if self._read_steps < len(self.web_search_steps):
            self._read_steps += 1
            return self.web_search_steps[self._read_steps - 1]
        return None

    def isDone(self) -> bool:
        return self.done


class Bot:
    """A hugchat Bot: conversations {id: title}, chat, system prompts per model, histories.
    Get one from `HuggingChat().getBot(...)`."""

    def __init__(
        self,
        client: Client,
        pool: Callable[[], ThreadPoolExecutor],
        email: str | None,
        model: str | None,
    ) -> None:
        self._client = client
        self._pool = pool
        self.email = email
        self._bot, self._model = self._resolve(model)
        self.model = model or self._bot  # what was asked for, or the default bot's slug
        self.conversations: dict[str, str | None] = {}
        self.current_conversation: str | None = None
        self.fetchConversations()

    def _resolve(self, model: str | None) -> tuple[str, str | None]:
        """The chinwag bot a model names (a bot by slug, uid or name), else the default bot,
        and the model it answers with (None: the bot's own)."""
        if model is None:
            return self._client.bots.find().slug, None
        checks.key(model, "model")
        try:
            return self._client.bots.find(model).slug, None
        except NotFoundError:
            return self._client.bots.find().slug, model

    def _run(self, work: Callable[[], T], wait: bool) -> T | Future[T]:
        if not isinstance(wait, bool):
            raise InputError(f"wait must be True or False, not {wait!r:.60}.")
        return work() if wait else self._pool().submit(work)

    def fetchConversations(self, wait: bool = True) -> Future[None] | None:
        """Read every conversation's id and title into `conversations`."""

        def run() -> None:
            found: dict[str, str | None] = {}
            page = 100
            while True:
                listed = self._client.conversations.list(limit=page, offset=len(found))
                found.update((c.id, c.title) for c in listed)
                if len(listed) < page:
                    break
            self.conversations = found

        return self._run(run, wait)

    @overload
    def chat(
        self,
        text: str,
        conversation_id: str | None = ...,
        web_search: bool = ...,
        max_tries: int = ...,
        custom_data: RequestData | Mapping[str, Any] | None = ...,
        wait: Literal[True] = ...,
    ) -> Message: ...

    @overload
    def chat(
        self,
        text: str,
        conversation_id: str | None = ...,
        web_search: bool = ...,
        max_tries: int = ...,
        custom_data: RequestData | Mapping[str, Any] | None = ...,
        *,
        wait: Literal[False],
    ) -> Future[Message]: ...

    def chat(
        self,
        text: str,
        conversation_id: str | None = None,
        web_search: bool = False,
        max_tries: int = 3,
        custom_data: RequestData | Mapping[str, Any] | None = None,
        wait: bool = True,
    ) -> Message | Future[Message]:
        """Ask in a conversation (the current one, or a new one if there is none); the
        Message once answered, or with wait=False a Future of it. A failed turn's error is
        raised by the Message's getters; what arrived before it stays in `stream_text`."""
        checks.text(text, "text")
        checks.flag(web_search, "web_search")
        if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 1:
            raise InputError(f"max_tries must be a whole number from 1, not {max_tries!r:.60}.")
        if conversation_id is not None:
            checks.identifier(conversation_id, "conversation_id")
        # web_search=False leaves search to the bot (off unless the bot has search: true).
        given = {
            "bot": self._bot, "model": self._model, "search": web_search or None,
            **_custom(custom_data),
        }  # fmt: skip
        options = cast("TurnOptions", checks.turn_options(given))
        message = Message(conversation_id or self.current_conversation, web_search)

        def run() -> Message:
            if message.conversation_id is None:
                message.conversation_id = self._create()
            turn = cast("TurnOptions", {**options, "conversation": message.conversation_id})
            try:
                stream = self._client.stream(text, **turn)
                with stream:
                    for event in stream.events():
                        message._take(event)
                if self.conversations.get(message.conversation_id) is None:
                    # chinwag titles a conversation by itself after its first exchange.
                    titled = self._client.conversations.get(message.conversation_id)
                    self.conversations[titled.id] = titled.title
            except ChinwagError as exc:
                message.setError(exc)
            return message

        return self._run(run, wait)

    def setSystemPrompt(
        self, model: str, prompt: str | None, wait: bool = True
    ) -> Future[None] | None:
        """The system prompt of every conversation on `model` ("" or None removes it); a
        conversation's or bot's own prompt still comes first."""
        return self._run(lambda: self._client.set_system_prompt(model, prompt or None), wait)

    def setSystemPrompts(self, prompts: dict[str, str], wait: bool = True) -> Future[None] | None:
        if not isinstance(prompts, Mapping):
            raise InputError(f"prompts must map model names to prompts, not {prompts!r:.60}.")
        cleared = {model: prompt or None for model, prompt in prompts.items()}
        return self._run(lambda: self._client.set_system_prompts(cleared), wait)

    @overload
    def updateTitle(self, conversation_id: str, wait: Literal[True] = ...) -> str: ...

    @overload
    def updateTitle(self, conversation_id: str, wait: Literal[False]) -> Future[str]: ...

    def updateTitle(self, conversation_id: str, wait: bool = True) -> Future[str] | str:
        """Have the model title the conversation now; `conversations` has the new title."""

        def run() -> str:
            conversation = self._client.conversations.generate_title(conversation_id)
            self.conversations[conversation.id] = conversation.title
            return conversation.title or ""

        return self._run(run, wait)

    @overload
    def createConversation(self, wait: Literal[True] = ...) -> str: ...

    @overload
    def createConversation(self, wait: Literal[False]) -> Future[str]: ...

    def createConversation(self, wait: bool = True) -> Future[str] | str:
        """A new, empty conversation, made the current one; its id."""
        return self._run(self._create, wait)

    def _create(self) -> str:
        conversation = self._client.conversations.create(bot=self._bot)
        self.conversations[conversation.id] = conversation.title
        self.current_conversation = conversation.id
        return conversation.id

    def removeConversation(self, conversation_id: str, wait: bool = True) -> Future[None] | None:
        """Delete the conversation and its messages."""

        def run() -> None:
            self._client.conversations.delete(conversation_id)
            self.conversations.pop(conversation_id, None)
            if self.current_conversation == conversation_id:
                self.current_conversation = None

        return self._run(run, wait)

    @overload
    def getHistoriesByID(
        self, conversation_id: str | None = ..., wait: Literal[True] = ...
    ) -> list[dict[str, Any]]: ...

    @overload
    def getHistoriesByID(
        self, conversation_id: str | None, wait: Literal[False]
    ) -> Future[list[dict[str, Any]]]: ...

    def getHistoriesByID(
        self, conversation_id: str | None = None, wait: bool = True
    ) -> Future[list[dict[str, Any]]] | list[dict[str, Any]]:
        """The conversation's messages (the current one's if None), oldest first:
        {conversation_id, is_user, text, text_id}."""

        def run() -> list[dict[str, Any]]:
            chosen = conversation_id or self.current_conversation
            if chosen is None:
                return []
            return [
                {
                    "conversation_id": m.conversation_id,
                    "is_user": int(m.role == "user"),
                    "text": m.content,
                    "text_id": m.id,
                }
                for m in self._client.conversations.history(chosen)
                if m.role in ("user", "assistant")
            ]

        return self._run(run, wait)

    def getConversations(self) -> dict[str, str | None]:
        return self.conversations

    def switchConversation(self, conversation_id: str) -> None:
        """Make a conversation the current one (NotFoundError if the user has none such)."""
        self.current_conversation = self._client.conversations.get(conversation_id).id


def _key(cookies: Any) -> str | None:
    """A chinwag server's API key from hugchat's cookies: the key itself, or an "api_key"
    entry of a dict or SimpleCookie. None lets the client read CHINWAG_API_KEY."""
    if isinstance(cookies, str):
        return cookies
    if isinstance(cookies, Mapping) and "api_key" in cookies:
        value = cookies["api_key"]
        return str(getattr(value, "value", value))
    return None


class HuggingChat(Closing):
    """Where Bots come from: `HuggingChat().getBot(email, cookies, model)`.

    In-process (the default) every Bot shares one Client and the login is ignored. Given
    `base_url` (or with CHINWAG_URL set), the Bots talk to that chinwag server, each login
    with the key its cookies carry (else CHINWAG_API_KEY): the key is who the Bot is.
    """

    def __init__(
        self,
        *args: Any,
        base_url: str | None = None,
        config: Config | Mapping[str, Any] | None = None,
    ) -> None:
        self._base_url = base_url
        self._config = config
        self._local: Client | None = None  # in-process: one Client for every login
        self._clients: dict[str | None, Client] = {}  # a server's: one per key
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def _pool(self) -> ThreadPoolExecutor:
        """The threads that run `wait=False` calls, started on the first."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(4, thread_name_prefix="hugchat")
            return self._executor

    def _client(self, cookies: Any) -> Client:
        key = _key(cookies)
        with self._lock:
            if self._local is not None:
                return self._local
            found = self._clients.get(key)
            if found is None:
                found = connect.client(self._config, base_url=self._base_url, api_key=key)
                if found.server is None:
                    self._local = found
                else:
                    self._clients[key] = found
            return found

    def getBot(
        self, email: str | None = None, cookies: Any = None, model: str | None = None
    ) -> Bot:
        """A Bot for `model` (a chinwag bot, or a model name; None: the default bot). Against
        a server, `cookies` carry its key and a wrong one fails here (AccessError); `email`
        is kept as `bot.email`, not checked: a chinwag server knows its users by key."""
        return Bot(self._client(cookies), self._pool, email, model)

    def close(self) -> None:
        """Wait for `wait=False` calls, then close the clients."""
        with self._lock:
            executor, self._executor = self._executor, None
            clients = [*self._clients.values(), *([self._local] if self._local else [])]
            self._clients, self._local = {}, None
        if executor is not None:
            executor.shutdown(wait=True)
        for client in clients:
            client.close()


__all__ = ["Bot", "HuggingChat", "ListBots", "Message", "RequestData"]
