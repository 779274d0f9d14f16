"""Layered configuration: defaults < YAML file (and profile) < environment < values set in code."""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from chinwag.errors import ConfigError, NotFoundError
from chinwag.keystore import MASK, mask_url, secret_name, write_private

ENV_PREFIX = "CHINWAG_"
# Variables that steer where config lives rather than set a key.
_META_ENV = {"CHINWAG_HOME", "CHINWAG_PROFILE", "CHINWAG_CONFIG"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)


class ProviderSettings(BaseModel):
    """One configured provider; plugin providers may add keys of their own."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    type: str = "openai"
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str | None = None  # this provider's default model
    # Seconds to wait for the answer to start (its first chunk, or a non-streamed answer),
    # and for any one read from the socket (httpx's read timeout, as openai-python's).
    timeout: float = Field(default=600.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    # The longest pause between two chunks of a streamed answer; keep-alive comments
    # do not count.
    idle_timeout: float = Field(default=60.0, gt=0)
    # The whole answer, retries included; time the caller spends between chunks is not
    # counted.
    deadline: float = Field(default=600.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    # Connections at once (streams, requests); more wait for one to be free.
    max_connections: int = Field(default=1000, gt=0)
    headers: dict[str, str] = {}
    # Whether its models take image parts; None: the type's own answer (openai: yes, for a
    # server of vision models; local: no). False sends no image there, with a clear error.
    images: bool | None = None


class ModelPrice(_Section):
    """What a model costs, in US dollars per million tokens (a private deployment's price,
    or one the price table does not know): it wins over genai-prices' table."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class ModelSettings(_Section):
    """Per-model settings, keyed by model name."""

    context_window: int | None = Field(default=None, gt=0)
    system_prompt: str | None = None
    price: ModelPrice | None = None


class SearchSettings(_Section):
    provider: str = "searxng"
    url: str | None = None  # the SearXNG server, e.g. https://searx.example/
    results: int = Field(default=5, gt=0, le=20)  # how many go into the context
    allow_private: bool = False  # let search.url resolve to a private or loopback address
    timeout: float = Field(default=10.0, gt=0)


class TemplateSettings(_Section):
    """Bounds on rendering a template (or a workflow's text), so none can hang or fill memory."""

    max_output: int = Field(default=1_000_000, gt=0)  # characters in any text or list it builds
    timeout: float = Field(default=2.0, gt=0)  # seconds one render may take


class WorkflowSettings(_Section):
    max_iterations: int = Field(default=100, gt=0)  # items one step's loop may run over
    max_turns: int = Field(default=500, gt=0)  # turns one run may send, all steps together


class StoreSettings(_Section):
    url: str | None = None  # None: a SQLite file in the user data dir
    echo: bool = False
    lock_timeout: float = Field(default=15.0, gt=0)  # seconds to wait for another writer
    save_every: float = Field(default=1.0, gt=0)  # seconds between saves of a streaming answer
    # Seconds a turn holds its conversation without renewing: after a crash, the next turn
    # waits at most this long; while a turn runs, others in its conversation wait for it.
    turn_lease: float = Field(default=10.0, gt=0)


TitleMode = Literal["auto", "model", "words", "off"]
# What people write for a mode (true: the old "titles on", which meant model-written).
_TITLE_WORDS: dict[str, TitleMode] = {
    "true": "model", "on": "model", "yes": "model", "false": "off", "no": "off",
}  # fmt: skip


class TitleSettings(_Section):
    """How new conversations get their titles, and what that costs.

    auto: model-written in the chat shell (one more model call, in the background), the
      first question's words everywhere else (no model call);
    model: model-written everywhere; words: the question's words everywhere; off: none.
    A title is never model-written by the embedded model (a 270M model writes poor
    titles): words instead, unless `provider` names a real provider to write them.
    """

    mode: TitleMode = "auto"
    provider: str | None = None  # the provider that writes titles; None: the bot's own

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """`titles: model` (or true/false) is `titles: {mode: model}`."""
        if isinstance(value, bool):
            return {"mode": "model" if value else "off"}
        if isinstance(value, str):
            return {"mode": _TITLE_WORDS.get(value.strip().lower(), value.strip().lower())}
        return value


class ServerSettings(_Section):
    """`chinwag serve`, and where a remote client finds a server."""

    host: str = "127.0.0.1"  # loopback unless told otherwise (and then keys are required)
    port: int = Field(default=8000, gt=0, lt=65536)
    max_body: int = Field(default=1_000_000, gt=0)  # bytes; larger requests get 413
    drain: int = Field(default=30, ge=0)  # seconds SIGTERM lets answers finish
    keep_alive: int = Field(default=75, gt=0)  # seconds an idle client connection stays open
    # Tokens a call without max_tokens reserves for its answer against a key's token limits
    # (settled to what it used once it ends).
    reserve_tokens: int = Field(default=1024, gt=0)
    # A remote client: the server Client and AsyncClient talk to instead of the engine
    # in-process (CHINWAG_URL), the key it sends (CHINWAG_API_KEY), and its patience.
    url: str | None = None
    api_key: SecretStr | None = None
    connect_timeout: float = Field(default=5.0, gt=0)
    timeout: float = Field(default=600.0, gt=0)  # for an answer to start, and any one read
    max_retries: int = Field(default=2, ge=0, le=10)
    session_hours: int = Field(default=168, gt=0)  # how long the web page stays signed in


class AttachmentSettings(_Section):
    """Files attached to a turn: checked against these before anything is stored or sent."""

    max_bytes: int = Field(default=5_000_000, gt=0)  # one file
    max_total: int = Field(default=20_000_000, gt=0)  # all the files of one turn
    max_files: int = Field(default=20, gt=0)  # files in one turn


class MCPServerSettings(_Section):
    """One Model Context Protocol server: a command line (stdio) or a URL (streamable HTTP)."""

    command: str | list[str] | None = None  # started on first use, stopped on close
    env: dict[str, str] = {}  # the command's environment (added to a minimal default)
    url: str | None = None
    timeout: float = Field(default=30.0, gt=0)  # seconds to start, and for any one call
    # Tools that run without asking: true for all of them, or their names. Others are
    # asked for in the shell, and refused elsewhere (scripts, servers).
    allow: bool | list[str] = False

    @model_validator(mode="after")
    def _one_way(self) -> MCPServerSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError("give an MCP server either a command (stdio) or a url (HTTP)")
        return self


class MCPSettings(_Section):
    servers: dict[str, MCPServerSettings] = {}


def _default_providers() -> dict[str, ProviderSettings]:
    return {
        "openai": ProviderSettings(base_url="https://api.openai.com/v1", model="gpt-4o-mini"),
        "local": ProviderSettings(type="local"),  # the embedded model (chinwag[local])
    }


class Settings(_Section):
    """Every chinwag setting, validated."""

    provider: str | None = None  # the default provider; None: chosen (see providers.choose_default)
    model: str | None = None  # overrides the provider's default model
    bot: str = "default"
    user: str = "local"
    tool_rounds: int = Field(default=8, gt=0)  # tool calls a turn may chain before it stops
    titles: TitleSettings = Field(default_factory=TitleSettings)  # or just a mode: `titles: model`
    title_bot: str | None = None  # the bot that writes titles; None: the conversation's
    # The last resort of the system prompts: call > conversation > bot > model > this.
    system_prompt: str | None = "You are a helpful assistant."
    context_window: int = Field(default=8192, gt=0)  # for models without their own setting
    providers: dict[str, ProviderSettings] = Field(default_factory=_default_providers)
    models: dict[str, ModelSettings] = {}
    store: StoreSettings = Field(default_factory=StoreSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    templates: TemplateSettings = Field(default_factory=TemplateSettings)
    workflows: WorkflowSettings = Field(default_factory=WorkflowSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    attachments: AttachmentSettings = Field(default_factory=AttachmentSettings)
    mcp: MCPSettings = Field(default_factory=MCPSettings)
    profiles: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class Paths:
    """Where chinwag keeps its files."""

    config_dir: Path
    data_dir: Path
    cache_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.yaml"

    @property
    def database(self) -> Path:
        return self.data_dir / "chinwag.db"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Paths:
        home = env.get("CHINWAG_HOME")
        if home:
            root = Path(home).expanduser()
            return cls(root, root, root / "cache")
        import platformdirs  # lazy: only needed when no home is given

        return cls(
            Path(platformdirs.user_config_dir("chinwag")),
            Path(platformdirs.user_data_dir("chinwag")),
            Path(platformdirs.user_cache_dir("chinwag")),
        )


@functools.cache
def _defaults() -> dict[str, Any]:
    return Settings().model_dump()


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def split_key(key: str) -> list[str]:
    """A dotted key's segments; a segment in double quotes may hold dots (`models."gpt-4.1"`)."""
    if not isinstance(key, str):
        raise ConfigError(f"A config key is text like 'store.url', not {key!r}.", key=str(key))
    parts: list[str] = []
    i, n = 0, len(key)
    while True:
        if i < n and key[i] == '"':
            i += 1
            segment: list[str] = []
            while i < n and key[i] != '"':
                if key[i] == "\\" and i + 1 < n:
                    i += 1
                segment.append(key[i])
                i += 1
            if i >= n:
                raise _bad_key(key, "a quoted name is not closed")
            i += 1
            part = "".join(segment)
        else:
            end = key.find(".", i)
            end = n if end < 0 else end
            part = key[i:end]
            if '"' in part:
                raise _bad_key(key, 'quote a whole name, as in models."gpt-4.1"')
            i = end
        if not part:
            raise _bad_key(key, "a name is empty")
        parts.append(part)
        if i == n:
            return parts
        if key[i] != ".":
            raise _bad_key(key, "a quoted name must be followed by a dot")
        i += 1


def join_key(parts: Iterable[Any]) -> str:
    """The dotted key of these segments, quoting the ones that hold a dot or a quote."""
    out = []
    for part in map(str, parts):
        if part and not any(c in part for c in '."\\'):
            out.append(part)
        else:
            out.append('"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return ".".join(out)


def _bad_key(key: str, why: str) -> ConfigError:
    return ConfigError(
        f"Invalid config key {key!r}: {why}. Use dotted names like 'store.url', and double "
        f"quotes around a name that holds dots: 'models.\"gpt-4.1\".system_prompt'.",
        key=key,
    )


def _nest(parts: Sequence[str], value: Any) -> dict[str, Any]:
    head, *rest = parts
    return {head: _nest(rest, value) if rest else value}


def _lookup(data: Mapping[str, Any], parts: Sequence[str]) -> tuple[bool, Any]:
    node: Any = data
    for part in parts:
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _env_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The settings the environment sets, and for each key's segments the variable that set it."""
    layer: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    known = set(Settings.model_fields)

    def put(parts: list[str], raw: str, var: str) -> None:
        value: Any = raw
        nonlocal layer
        if raw[:1] in "[{":
            with contextlib.suppress(ValueError):  # validation reports it against the key
                value = json.loads(raw)
        layer = _deep_merge(layer, _nest(parts, value))
        origins[tuple(parts)] = var

    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        if env.get(var):
            put(["providers", "openai", var[7:].lower()], env[var], var)
    for var, key in (("CHINWAG_URL", "url"), ("CHINWAG_API_KEY", "api_key")):
        if env.get(var):
            put(["server", key], env[var], var)
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX) or var in _META_ENV:
            continue
        # Split at `__` only, so a level may hold dots (a model name like gpt-4.1).
        parts = var[len(ENV_PREFIX) :].lower().split("__")
        # Other tools' CHINWAG_* variables are not ours to reject.
        if parts[0] in known:
            if not all(parts):
                raise _bad_key(".".join(parts), f"{var} has an empty level")
            put(parts, raw, var)
    return layer, origins


def yaml_problem(exc: Exception, *, where: bool = True) -> str:
    """One line for a YAML error: what, and where unless told not to (a one-line value).

    PyYAML's own text spans several lines and quotes the source.
    """
    problem = str(getattr(exc, "problem", None) or "")
    if not problem:
        return " ".join(str(exc).split())
    problem = problem.replace("'<stream end>'", "the end")
    if not where:
        return problem
    mark = getattr(exc, "problem_mark", None)
    at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and start is not None:
        problem += f" ({context} from line {start.line + 1})"
    return at + problem


def read_yaml(path: Path) -> Any:
    """A YAML file's data; ConfigError in one line, naming the file, if it cannot be read."""
    import yaml

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    from chinwag.checks import utf8

    text = utf8(raw, str(path), ConfigError)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"Cannot read {path}: {yaml_problem(exc)}. Fix the YAML syntax there."
        ) from None


def _load_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, not {type(data).__name__}.")
    return data


# Sections whose keys are names the user chose (a provider "auth" is not a secret).
_NAMED = frozenset({"providers", "models", "profiles"})


def _masked(node: Any, name: str = "", parent: str = "") -> Any:
    """Settings data with secrets masked: values named like secrets, and URL credentials."""
    if (
        node is not None
        and secret_name(name, header=parent.lower() == "headers")
        and not (isinstance(node, Mapping) and parent in _NAMED)
    ):
        return MASK
    if isinstance(node, Mapping):
        return {k: _masked(v, str(k), name) for k, v in node.items()}
    if isinstance(node, list):
        return [_masked(v, "", name) for v in node]
    return mask_url(node) if isinstance(node, str) else node


class Config:
    """chinwag's settings, read with `get("a.b")` and changed with `set("a.b", value)`.

    A segment that holds dots goes in double quotes: `get('models."gpt-4.1".system_prompt')`.
    """

    def __init__(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        profile: str | None = None,
        env: Mapping[str, str] | None = None,
        file: str | Path | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.paths = Paths.from_env(env)
        self.file = (
            Path(file) if file else Path(env.get("CHINWAG_CONFIG") or self.paths.config_file)
        )
        file_data = _load_file(self.file)
        self.profile = profile or env.get("CHINWAG_PROFILE") or None
        if self.profile is not None:
            file_data = _deep_merge(file_data, self._profile(file_data.get("profiles")))
        env_data, self._env_origins = _env_layer(env)
        self._layers: list[tuple[str, dict[str, Any]]] = [
            (str(self.file), file_data),
            ("the environment", env_data),
            ("code", {}),
        ]
        for key, value in (values or {}).items():
            code = _deep_merge(self._layers[2][1], _nest(split_key(key), value))
            self._layers[2] = ("code", code)
        self.settings = self._validate()

    def _profile(self, profiles: Any) -> Mapping[str, Any]:
        """The chosen profile's settings from the file's `profiles:`."""
        profiles = profiles or {}
        if not isinstance(profiles, Mapping):
            raise ConfigError(
                f"'profiles' in {self.file} must map profile names to settings, not "
                f"{type(profiles).__name__}.",
                key="profiles",
            )
        if self.profile not in profiles:
            known = ", ".join(sorted(map(str, profiles))) or "none"
            raise ConfigError(
                f"Unknown profile {self.profile!r} (profiles in {self.file}: {known}). "
                f"Add it under 'profiles:' there or choose another.",
                key="profile",
                value=self.profile,
            )
        chosen = profiles[self.profile] or {}
        if not isinstance(chosen, Mapping):
            raise ConfigError(
                f"The profile {self.profile!r} in {self.file} must be a mapping of settings, "
                f"not {type(chosen).__name__}.",
                key=join_key(["profiles", self.profile]),
                value=chosen,
            )
        return chosen

    def _merged(self) -> dict[str, Any]:
        # Defaults are the bottom layer, so that setting providers.local.n_ctx keeps the
        # default providers (and the local one's type) instead of replacing them.
        merged = _defaults()
        for _, data in self._layers:
            merged = _deep_merge(merged, data)
        return merged

    def _source(self, parts: Sequence[str]) -> str:
        """Which layer set a key, for error messages."""
        for name, data in reversed(self._layers):
            if _lookup(data, parts)[0]:
                if name == "the environment":
                    origins = self._env_origins.items()
                    var = next((v for k, v in origins if tuple(parts[: len(k)]) == k), None)
                    return f"the environment ({var})" if var else "the environment"
                return str(name)
        return "defaults"

    def _validate(self) -> Settings:
        try:
            return Settings.model_validate(self._merged())
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                parts = [str(p) for p in err["loc"]]
                key = join_key(parts)
                # The input as `config show` would show it: a secret must not reach a log.
                shown = repr(_lookup(_masked(_nest(parts, err.get("input"))), parts)[1])
                problems.append(
                    f"{key} = {shown} (set in {self._source(parts)}): {err['msg']}"
                    if err["type"] != "extra_forbidden"
                    else f"{key} is not a chinwag setting (set in {self._source(parts)})"
                )
            first = exc.errors()[0]
            raise ConfigError(
                "Invalid configuration: " + "; ".join(problems) + ". Correct or remove it.",
                key=join_key(first["loc"]),
                value=first.get("input"),
            ) from None

    @staticmethod
    def key(*segments: str) -> str:
        """The dotted key of these segments: `key("models", "gpt-4.1", "system_prompt")`."""
        return join_key(segments)

    def get(self, key: str, default: Any = ...) -> Any:
        """The value at a dotted key, e.g. `get("providers.openai.base_url")`."""
        parts = split_key(key)
        found, value = _lookup(self.settings.model_dump(), parts)
        if found:
            # Keep secrets wrapped so printing a value never leaks a key.
            if parts[-1] == "api_key" and value is not None:
                return SecretStr(
                    value.get_secret_value() if isinstance(value, SecretStr) else value
                )
            return value
        if default is not ...:
            return default
        hint = ""
        if len(parts) > 2 and parts[0] in ("models", "providers"):
            hint = ' A name with dots goes in double quotes: models."gpt-4.1".system_prompt.'
        raise ConfigError(
            f"Unknown config key {key!r}. See `Config().keys()` for the keys.{hint}", key=key
        )

    def set(self, key: str, value: Any) -> None:
        """Set a dotted key for this process (the code layer); validated at once."""
        name, data = self._layers[2]
        previous = data
        self._layers[2] = (name, _deep_merge(data, _nest(split_key(key), value)))
        try:
            self.settings = self._validate()
        except ConfigError:
            self._layers[2] = (name, previous)
            raise

    def save(self, key: str, value: Any) -> None:
        """Set a dotted key in the config file (and in this Config), validated first.

        The file is replaced atomically, and readable by its owner only when it holds a
        secret (an API key, a secret header, a URL with a password).
        """
        data = _deep_merge(_load_file(self.file), _nest(split_key(key), value))
        self.set(key, value)  # raises ConfigError, naming key and value, if it is invalid
        import yaml

        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        try:
            write_private(self.file, text, secret=_masked(data) != data)
        except OSError as exc:
            raise ConfigError(f"Cannot write {self.file}: {exc.strerror or exc}.") from None

    def shown(self) -> dict[str, Any]:
        """Every setting, with secrets masked (API keys, secret headers, URL passwords)."""
        shown: dict[str, Any] = _masked(self.settings.model_dump(mode="json"))
        return shown

    def get_shown(self, key: str) -> Any:
        """A dotted key's value with secrets masked, at any depth."""
        return _lookup(self.shown(), split_key(key))[1]

    def keys(self) -> list[str]:
        """Every dotted key that has a value."""
        out: list[str] = []

        def walk(prefix: list[str], node: Any) -> None:
            if isinstance(node, dict) and node:
                for k, v in node.items():
                    walk([*prefix, str(k)], v)
            else:
                out.append(join_key(prefix))

        walk([], self.settings.model_dump())
        return out

    @property
    def store_url(self) -> str:
        """store.url, else the SQLite file in the data dir."""
        return self.settings.store.url or f"sqlite:///{self.paths.database}"

    def provider_settings(self, name: str) -> ProviderSettings:
        """providers.<name>, with its API key: the environment's or code's, else the one
        `chinwag keys set` stored (keyring or 0600 file), else config.yaml's."""
        try:
            settings = self.settings.providers[name]
        except KeyError:
            known = ", ".join(sorted(self.settings.providers)) or "none"
            raise ConfigError(
                f"No provider named {name!r} is configured (configured: {known}). "
                f"Add it under 'providers:' in {self.file}.",
                key=f"providers.{name}",
            ) from None
        source = self._source(["providers", name, "api_key"])
        if settings.api_key is not None and source.startswith(("the environment", "code")):
            return settings
        from chinwag.keystore import Secrets, provider_key

        stored = Secrets(self.paths.config_dir).get(provider_key(name))
        if stored is None:
            return settings
        return settings.model_copy(update={"api_key": SecretStr(stored)})

    def require_provider(self, name: str) -> str:
        """`name`, if a provider of that name is configured; else NotFoundError naming them.
        For a caller's choice of provider (a turn's `provider=`): their mistake, not the
        config's, so the error names no file."""
        if name not in self.settings.providers:
            known = ", ".join(sorted(self.settings.providers)) or "none"
            raise NotFoundError(f"No provider {name!r}; the configured ones: {known}.")
        return name

    def context_window(self, model: str, provider_says: int | None = None) -> int:
        """models.<model>.context_window, else what the provider knows, else the default."""
        per_model = self.settings.models.get(model)
        if per_model and per_model.context_window:
            return per_model.context_window
        return provider_says or self.settings.context_window

    def source(self, key: str) -> str:
        """Which layer sets a dotted key: "defaults", the file, "the environment (VAR)",
        or "code"."""
        return self._source(split_key(key))

    def price(self, model: str) -> ModelPrice | None:
        """models.<model>.price, if the config sets one."""
        per_model = self.settings.models.get(model)
        return per_model.price if per_model else None

    def __repr__(self) -> str:
        return f"Config(file={str(self.file)!r}, profile={self.profile!r})"
