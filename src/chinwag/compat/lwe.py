"""LLM Workflow Engine's Python module over chinwag: `from chinwag.compat.lwe import ApiBackend,
Config`.

`ApiBackend.ask` and `ask_stream` return LWE's `(success, response, user_message)`; a failure
is `(False, None, message)`, never an exception. A preset is a chinwag bot: its slug is the
preset's name. LWE's own presets (`gpt-4-chatbot-responses`...) become the user's bots the
first time they are used. Against a chinwag server, set chinwag's `server.url` and
`server.api_key` in the Config (or CHINWAG_URL and CHINWAG_API_KEY): the same calls, the
server's bots, providers and store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from chinwag import checks
from chinwag.closing import Closing
from chinwag.compat import connect
from chinwag.errors import ChinwagError, ConfigError, InputError, NotFoundError

if TYPE_CHECKING:
    from chinwag.config import Config as ChinwagConfig
    from chinwag.plan import TurnOptions
    from chinwag.streams import Stream
    from chinwag.types import Bot, Conversation, Message

Result = tuple[bool, Any, str]

# LWE's settings that mean something here, and their defaults; every other key is chinwag's.
_LWE_KEYS: dict[str, Any] = {
    "debug.log.enabled": False,
    "debug.log.filepath": None,  # None: lwe-debug.log in chinwag's data dir
    "debug.log.level": "debug",
    "model.default_preset": None,
    "model.default_system_message": "default",  # "default": chinwag's system prompts apply
    "backend_options.default_user": None,
    "backend_options.default_conversation_id": None,
}

# LWE's system presets, as LWE ships them (OpenAI's gpt-4 with these settings).
_SYSTEM_PRESETS: dict[str, dict[str, Any]] = {
    "gpt-4-chatbot-responses": {
        "description": "GPT-4 general chatbot",
        "params": {"temperature": 0.5, "top_p": 0.5},
    },
    "gpt-4-code-generation": {
        "description": "GPT-4 for code generation",
        "system_prompt": "You are an expert programmer. Answer with working code.",
        "params": {"temperature": 0.2, "top_p": 0.1},
    },
    "gpt-4-creative-writing": {
        "description": "GPT-4 for creative writing",
        "system_prompt": "You are a creative writer.",
        "params": {"temperature": 0.7, "top_p": 0.8},
    },
}

# LWE's model customizations that chinwag sends, by LWE's name.
_PARAMS = {"temperature", "max_tokens", "top_p", "top_k", "stop", "seed"}
_OVERRIDES = {
    "stream_callback", "system_message", "preset", "activate_preset", "preset_overrides",
    "title", "stream",
}  # fmt: skip


class Config:
    """LWE's Config: `get` and `set` dotted keys. LWE's own keys (debug.log.*, model.default_*,
    backend_options.default_*) are kept here; any other key is chinwag's (see
    `chinwag config show`), e.g. `providers.openai.base_url`."""

    def __init__(
        self,
        config_dir: str | Path | None = None,
        data_dir: str | Path | None = None,
        profile: str = "default",
        *,
        config: ChinwagConfig | Mapping[str, Any] | None = None,
    ) -> None:
        from chinwag.config import Config as ChinwagConfig

        if isinstance(config, ChinwagConfig):
            self.chinwag = config
        else:
            values = dict(config or {})
            if data_dir is not None:
                values["store.url"] = f"sqlite:///{Path(data_dir).expanduser() / 'chinwag.db'}"
            file = Path(config_dir).expanduser() / "config.yaml" if config_dir else None
            chosen = None if profile == "default" else profile
            self.chinwag = ChinwagConfig(values, profile=chosen, file=file)
        self._lwe = dict(_LWE_KEYS)

    def get(self, key: str, default: Any = None) -> Any:
        """The value at a dotted key; `default` for a chinwag key that is not set."""
        if key in self._lwe:
            return self._lwe[key]
        try:
            return self.chinwag.get(key)
        except ConfigError:
            if default is not None:
                return default
            raise ConfigError(
                f"Unknown config key {key!r}: neither one of LWE's that chinwag keeps "
                f"({', '.join(_LWE_KEYS)}) nor chinwag's (`chinwag config show` lists them).",
                key=key,
            ) from None

    def set(self, key: str, value: Any) -> None:
        """Set a dotted key for this process (LWE's, or chinwag's, validated at once)."""
        checks.key(key, "key")
        if key not in self._lwe:
            self.chinwag.set(key, value)
            return
        if key == "debug.log.enabled" and not isinstance(value, bool):
            raise ConfigError(f"{key} must be True or False, not {value!r:.60}.", key=key)
        level = logging.getLevelName(str(value).upper())
        if key == "debug.log.level" and not isinstance(level, int):
            raise ConfigError(f"{key} must be a logging level such as 'debug', not {value!r:.60}.")
        if key == "debug.log.filepath" and not isinstance(value, str | Path | None):
            raise ConfigError(f"{key} must be a path, not {value!r:.60}.", key=key)
        if key == "backend_options.default_user":
            checks.user(value)
        elif key not in ("debug.log.enabled", "debug.log.level", "debug.log.filepath"):
            checks.optional_text(value, key)
        self._lwe[key] = value


def _customizations(given: Any, what: str) -> tuple[dict[str, Any], str | None]:
    """LWE's model customizations (temperature, model_name, model_kwargs...) as chinwag's
    sampling settings, and the model they name."""
    if not isinstance(given, Mapping):
        raise InputError(f"{what} must be a dict of model settings, not {given!r:.60}.")
    flat = {k: v for k, v in given.items() if k != "model_kwargs"}
    kwargs = given.get("model_kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise InputError(f"{what}['model_kwargs'] must be a dict, not {kwargs!r:.60}.")
    flat.update(kwargs)
    model = flat.pop("model_name", None) or flat.pop("model", None)
    if flat.pop("n", 1) != 1:
        raise InputError(f"{what}: chinwag answers once per request (n=1).")
    hint = " (and model_name; timeouts are providers.<name>.timeout in config)"
    checks.known_keys(flat, _PARAMS, what, hint)
    params = checks.sampling({k: v for k, v in flat.items() if v is not None}, f"{what}: ")
    return params, checks.optional_text(model, "model")


def _preset_overrides(given: Any) -> tuple[dict[str, Any], str | None, str | None]:
    """LWE's preset_overrides ({metadata: {system_message}, model_customizations: {...}}, or
    just the customizations): sampling settings, model and system message."""
    if not isinstance(given, Mapping):
        raise InputError(f"preset_overrides must be a dict, not {given!r:.60}.")
    if not {"metadata", "model_customizations"} & set(given):
        return (*_customizations(given, "preset_overrides"), None)
    metadata = given.get("metadata") or {}
    if not isinstance(metadata, Mapping) or set(metadata) - {"system_message"}:
        raise InputError("preset_overrides['metadata'] may only set system_message here.")
    params, model = _customizations(
        given.get("model_customizations") or {}, "preset_overrides['model_customizations']"
    )
    return params, model, checks.optional_text(metadata.get("system_message"), "system_message")


def _system(message: Any) -> str | None:
    """A system message: "default" (or None) leaves chinwag's system prompts in charge."""
    return None if message in (None, "default") else checks.text(message, "system_message")


def _conversation(c: Conversation) -> dict[str, Any]:
    """A conversation as LWE's get_history lists it."""
    return {
        "id": c.id,
        "user_id": c.user,
        "title": c.title,
        "created_time": c.created_at,
        "updated_time": c.updated_at,
        "hidden": False,
    }


def _message(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "role": m.role,
        "message": m.content,
        "message_type": "content",
        "model": m.model,
        "status": m.status,
        "created_time": m.created_at,
    }


class ApiBackend(Closing):
    """LWE's ApiBackend: ask, ask_stream, conversations, presets and templates, over chinwag."""

    name = "api"

    def __init__(self, config: Config | None = None) -> None:
        if config is not None and not isinstance(config, Config):
            raise InputError(
                "ApiBackend takes a chinwag.compat.lwe.Config (or nothing), not "
                f"{type(config).__name__}."
            )
        self.config = config or Config()
        self._client = connect.client(self.config.chinwag)
        self.log = self._debug_log()
        self.user: str | int | None = self.config.get("backend_options.default_user")
        self.conversation_id: str | None = self.config.get(
            "backend_options.default_conversation_id"
        )
        self.conversation_title: str | None = None
        self.active_preset_name: str | None = self.config.get("model.default_preset")
        self.system_message = _system(self.config.get("model.default_system_message"))
        self.provider_name: str | None = None
        self.model: str | None = None
        self.message_clipboard: str | None = None
        self.streaming = False
        self._params: dict[str, Any] = {}  # set_provider's customizations
        self._lock = threading.Lock()
        self._stream: Stream | None = None
        self._stopped = False

    def _debug_log(self) -> logging.Logger:
        """LWE's debug log (debug.log.*): what each request did, without its text."""
        # A logger of this backend's own, outside logging's registry (so none is kept per
        # backend) and without parents: the file only, never the caller's console.
        log = logging.Logger("chinwag.compat.lwe")
        if not self.config.get("debug.log.enabled"):
            log.addHandler(logging.NullHandler())
        else:
            path = self.config.get("debug.log.filepath") or (
                self.config.chinwag.paths.data_dir / "lwe-debug.log"
            )
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(path, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.getLevelName(str(self.config.get("debug.log.level")).upper()))
        return log

    # -- asking -------------------------------------------------------------------------

    def ask(self, input: str, request_overrides: dict[str, Any] | None = None) -> Result:
        """Send `input`; `(True, answer, message)`, or `(False, None, why)`."""
        return self._request(input, request_overrides, stream=False)

    def ask_stream(self, input: str, request_overrides: dict[str, Any] | None = None) -> Result:
        """Send `input` and stream the answer to `request_overrides['stream_callback']`."""
        return self._request(input, request_overrides, stream=True)

    def _request(self, prompt: Any, overrides: Any, *, stream: bool) -> Result:
        self.log.info("Starting %s request", "streaming" if stream else "'ask'")
        try:
            overrides = self._check_overrides(overrides)
            checks.text(prompt, "The prompt")
            options = self._options(overrides)
            callback = overrides.get("stream_callback")
            if callback is not None and not callable(callback):
                raise InputError(f"stream_callback must be a function, not {callback!r:.60}.")
            if self.conversation_id is None:
                self._start_conversation(options, overrides.get("title"))
            options["conversation"] = self.conversation_id
            if overrides.get("stream", stream):
                success, text, message = self._streamed(prompt, options, callback)
            else:
                success, text, message = self._asked(prompt, options)
            if overrides.get("activate_preset") and overrides.get("preset"):
                self.activate_preset(overrides["preset"])
        except ChinwagError as exc:
            self.log.error("Request failed: %s", exc)
            return False, None, str(exc)
        self.message_clipboard = text
        return success, text, message

    def _asked(self, prompt: str, options: TurnOptions) -> Result:
        reply = self._client.ask(prompt, **options)
        self.log.info("Answered: %d characters, usage %s", len(reply.text), reply.usage)
        return True, reply.text, f"Response received in conversation {reply.conversation_id}"

    def _streamed(
        self, prompt: str, options: TurnOptions, callback: Callable[[str], Any] | None
    ) -> Result:
        stream = self._client.stream(prompt, **options)
        chunks: list[str] = []
        with self._lock:
            self._stream, self._stopped, self.streaming = stream, False, True
        try:
            for chunk in stream:
                chunks.append(chunk)
                if callback is not None:
                    callback(chunk)
                if self._stopped:
                    break
        finally:
            with self._lock:
                self._stream, self.streaming = None, False
            stream.close()  # stopped early: waits until the partial answer is stored
        text = "".join(chunks)
        if self._stopped:
            self.log.info("Stream terminated after %d characters", len(text))
            return True, text, "Stream terminated; the partial answer is stored"
        self.log.info("Streamed: %d characters, usage %s", len(text), stream.reply.usage)
        return True, stream.reply.text, f"Response received in conversation {self.conversation_id}"

    def terminate_stream(self, _signal: Any = None, _frame: Any = None) -> None:
        """Stop the answer being streamed; what it said so far is stored as partial. Safe
        from another thread, and as a signal handler (LWE's use: SIGINT)."""
        with self._lock:
            if not self.streaming:
                return
            self._stopped = True
            stream = self._stream
        self.log.info("Received signal to terminate stream")
        if stream is not None:
            stream.close()

    def _check_overrides(self, overrides: Any) -> dict[str, Any]:
        if overrides is None:
            return {}
        if not isinstance(overrides, Mapping):
            raise InputError(f"request_overrides must be a dict, not {overrides!r:.60}.")
        checks.known_keys(overrides, _OVERRIDES, "request_overrides")
        return dict(overrides)

    def _options(self, overrides: Mapping[str, Any]) -> TurnOptions:
        """The turn's options: bot (preset, provider, model), system prompt, settings, user."""
        params, model, system = dict(self._params), self.model, None
        if "preset_overrides" in overrides:
            extra, model_override, system = _preset_overrides(overrides["preset_overrides"])
            params.update(extra)
            model = model_override or model
        # As in LWE, the backend's preset (or provider and model) answers, not the one the
        # conversation began with: switch_to_conversation activates that one.
        preset = overrides.get("preset") or self.active_preset_name
        bot = self._preset(preset) if preset is not None else self._client.bots.find(user=self.user)
        system = overrides.get("system_message", system) or self.system_message
        chosen = {
            "bot": bot.slug, "provider": self.provider_name, "model": model,
            "system": _system(system), "user": self.user, **params,
        }  # fmt: skip
        return cast("TurnOptions", checks.turn_options(chosen))

    def _preset(self, name: Any) -> Bot:
        """The bot a preset names; one of LWE's own presets is saved as the user's bot."""
        checks.key(name, "preset")
        try:
            return self._client.bots.find(name, user=self.user)
        except NotFoundError:
            shipped = _SYSTEM_PRESETS.get(name)
            if shipped is None:
                raise
            self.log.info("Saving LWE's preset %s as a bot", name)
            return self._client.bots.create(
                slug=name, name=name, provider="openai", model="gpt-4", user=self.user, **shipped
            )

    def _start_conversation(self, options: TurnOptions, title: Any) -> None:
        """A new conversation for the turn, so that its id is known even if the turn stops."""
        conversation = self._client.conversations.create(
            bot=options.get("bot"), title=checks.optional_text(title, "title"), user=self.user
        )
        self.conversation_id, self.conversation_title = conversation.id, conversation.title

    # -- presets, providers, models -------------------------------------------------------

    def activate_preset(self, preset_name: str) -> Result:
        """Use a preset (a chinwag bot) for the requests that follow."""
        try:
            bot = self._preset(preset_name)
        except ChinwagError as exc:
            return False, None, str(exc)
        self.active_preset_name, self.provider_name, self.model = bot.slug, None, None
        self._params = {}
        return True, bot, f"Preset {bot.slug} activated"

    def set_provider(
        self, provider_name: str, customizations: dict[str, Any] | None = None, reset: bool = False
    ) -> Result:
        """Use a configured provider (LWE's `provider_chat_openai` is chinwag's `openai`),
        with `customizations` as model settings; it is always set afresh (LWE's `reset`)."""
        try:
            name = checks.key(provider_name, "provider_name")
            name = name.removeprefix("provider_").removeprefix("chat_")
            # A server's providers are its own: it refuses an unknown one at the next request.
            if self._client.server is None:
                self._client.config.require_provider(name)
            params, model = _customizations(customizations or {}, "customizations")
        except ChinwagError as exc:
            return False, None, str(exc)
        self.provider_name, self.model, self._params = name, model, params
        self.active_preset_name = None
        return True, name, f"Provider set to {name}"

    def set_model(self, model_name: str) -> Result:
        """Ask the current provider for this model from now on."""
        try:
            self.model = checks.key(model_name, "model_name")
        except ChinwagError as exc:
            return False, None, str(exc)
        return True, self.model, f"Model set to {self.model}"

    def set_system_message(self, system_message: str = "default") -> Result:
        try:
            self.system_message = _system(system_message)
        except ChinwagError as exc:
            return False, None, str(exc)
        return True, system_message, f"System message set to: {system_message}"

    # -- conversations ------------------------------------------------------------------

    def new_conversation(self) -> None:
        """The next request starts a new conversation."""
        self.conversation_id = self.conversation_title = self.message_clipboard = None

    def switch_to_conversation(self, conversation_id: str) -> None:
        """Go on with a stored conversation, its bot activated as the preset (NotFoundError
        if the user has no such conversation)."""
        conversation = self._client.conversations.get(conversation_id, user=self.user)
        self.conversation_id, self.conversation_title = conversation.id, conversation.title
        try:
            bot = self._client.bots.find(conversation.bot, user=self.user)
        except NotFoundError:  # its bot was deleted since: the default answers
            bot = self._client.bots.find(user=self.user)
        self.active_preset_name, self.provider_name, self.model = bot.slug, None, None
        self._params = {}

    def get_history(
        self, limit: int = 20, offset: int = 0, user_id: str | int | None = None
    ) -> Result:
        """The user's conversations, newest first: {id: {id, title, created_time, ...}}."""
        return self._result(
            lambda: {
                c.id: _conversation(c)
                for c in self._client.conversations.list(
                    limit=limit, offset=offset, user=user_id if user_id is not None else self.user
                )
            },
            "Retrieved conversations",
        )

    def get_conversation(self, id: str | None = None) -> Result:
        """A conversation and its messages: {conversation: {...}, messages: [...]}."""
        chosen = id or self.conversation_id
        if chosen is None:
            return False, None, "No current conversation"
        conversations = self._client.conversations
        return self._result(
            lambda: {
                "conversation": _conversation(conversations.get(chosen, user=self.user)),
                "messages": [_message(m) for m in conversations.history(chosen, user=self.user)],
            },
            "Retrieved conversation",
        )

    def set_title(self, title: str, conversation_id: str | None = None) -> Result:
        chosen = conversation_id or self.conversation_id
        if chosen is None:
            return False, None, "No current conversation"
        result = self._result(
            lambda: _conversation(self._client.conversations.rename(chosen, title, user=self.user)),
            f"Title set to: {title}",
        )
        if result[0] and chosen == self.conversation_id:
            self.conversation_title = title
        return result

    def delete_conversation(self, conversation_id: str | None = None) -> Result:
        chosen = conversation_id or self.conversation_id
        if chosen is None:
            return False, None, "No current conversation"

        def delete() -> dict[str, Any]:
            conversation = _conversation(self._client.conversations.get(chosen, user=self.user))
            self._client.conversations.delete(chosen, user=self.user)
            return conversation

        result = self._result(delete, f"Deleted conversation {chosen}")
        if result[0] and chosen == self.conversation_id:
            self.new_conversation()
        return result

    def run_template(
        self,
        template_name: str,
        template_vars: dict[str, Any] | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> Result:
        """Fill a template in and send it in the current conversation (or a new one);
        `overrides['request_overrides']` as for ask."""

        def run() -> str:
            given = (overrides or {}).get("request_overrides") or {}
            options = self._options(self._check_overrides(given))
            if self.conversation_id is not None:
                options["conversation"] = self.conversation_id
            reply = self._client.templates.run(template_name, template_vars, options=options)
            self.conversation_id = reply.conversation_id
            self.message_clipboard = reply.text
            return reply.text

        return self._result(run, f"Template {template_name} answered")

    def _result(self, work: Callable[[], Any], message: str) -> Result:
        """LWE's tuple: (True, what work returned, message), or (False, None, the error)."""
        try:
            return True, work(), message
        except ChinwagError as exc:
            self.log.error("%s", exc)
            return False, None, str(exc)

    def close(self) -> None:
        """Close the client (a running stream's partial answer is stored) and the debug log."""
        self._client.close()
        for handler in list(self.log.handlers):
            self.log.removeHandler(handler)
            handler.close()


__all__ = ["ApiBackend", "Config"]
