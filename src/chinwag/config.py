"""Layered configuration: defaults < YAML file (and profile) < environment < values set in code."""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from chinwag.errors import ConfigError

ENV_PREFIX = "CHINWAG_"
# Variables that steer where config lives rather than set a key.
_META_ENV = {"CHINWAG_HOME", "CHINWAG_PROFILE", "CHINWAG_CONFIG"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ProviderSettings(BaseModel):
    """One configured provider; plugin providers may add keys of their own."""

    model_config = ConfigDict(extra="allow")

    type: str = "openai"
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str | None = None  # this provider's default model
    timeout: float = Field(default=600.0, gt=0)  # seconds for the whole read, as openai-python
    connect_timeout: float = Field(default=5.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    headers: dict[str, str] = {}


class ModelSettings(_Section):
    """Per-model settings, keyed by model name."""

    context_window: int | None = Field(default=None, gt=0)
    system_prompt: str | None = None


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
    titles: bool = True  # title new conversations after their first exchange
    title_bot: str | None = None  # the bot that writes titles; None: the conversation's
    # The last resort of the system prompts: call > conversation > bot > model > this.
    system_prompt: str | None = "You are a helpful assistant."
    context_window: int = Field(default=8192, gt=0)  # for models without their own setting
    providers: dict[str, ProviderSettings] = Field(default_factory=_default_providers)
    models: dict[str, ModelSettings] = {}
    store: StoreSettings = StoreSettings()
    search: SearchSettings = SearchSettings()
    templates: TemplateSettings = TemplateSettings()
    workflows: WorkflowSettings = WorkflowSettings()
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


def _nest(key: str, value: Any) -> dict[str, Any]:
    head, *rest = key.split(".")
    if not head or any(not part for part in rest):
        raise ConfigError(
            f"Invalid config key {key!r}: use dotted names like 'store.url'.", key=key
        )
    return {head: _nest(".".join(rest), value) if rest else value}


def _lookup(data: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _env_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings the environment sets, and for each dotted key the variable that set it."""
    layer: dict[str, Any] = {}
    origins: dict[str, str] = {}
    known = set(Settings.model_fields)

    def put(key: str, raw: str, var: str) -> None:
        value: Any = raw
        nonlocal layer
        if raw[:1] in "[{":
            with contextlib.suppress(ValueError):  # validation reports it against the key
                value = json.loads(raw)
        layer = _deep_merge(layer, _nest(key, value))
        origins[key] = var

    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        if env.get(var):
            put(f"providers.openai.{var[7:].lower()}", env[var], var)
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX) or var in _META_ENV:
            continue
        key = var[len(ENV_PREFIX) :].lower().replace("__", ".")
        # Other tools' CHINWAG_* variables are not ours to reject.
        if key.split(".")[0] in known:
            put(key, raw, var)
    return layer, origins


def _load_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"Cannot read {path}: {exc}. Fix the YAML syntax there.") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, not {type(data).__name__}.")
    return data


class Config:
    """chinwag's settings, read with `get("a.b")` and changed with `set("a.b", value)`."""

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
            profiles = file_data.get("profiles") or {}
            if self.profile not in profiles:
                known = ", ".join(sorted(profiles)) or "none"
                raise ConfigError(
                    f"Unknown profile {self.profile!r} (profiles in {self.file}: {known}). "
                    f"Add it under 'profiles:' there or choose another.",
                    key="profile",
                    value=self.profile,
                )
            file_data = _deep_merge(file_data, profiles[self.profile])
        env_data, self._env_origins = _env_layer(env)
        self._layers: list[tuple[str, dict[str, Any]]] = [
            (str(self.file), file_data),
            ("the environment", env_data),
            ("code", {}),
        ]
        for key, value in (values or {}).items():
            self._layers[2] = ("code", _deep_merge(self._layers[2][1], _nest(key, value)))
        self.settings = self._validate()

    def _merged(self) -> dict[str, Any]:
        # Defaults are the bottom layer, so that setting providers.local.n_ctx keeps the
        # default providers (and the local one's type) instead of replacing them.
        merged = _defaults()
        for _, data in self._layers:
            merged = _deep_merge(merged, data)
        return merged

    def _source(self, key: str) -> str:
        """Which layer set a key, for error messages."""
        for name, data in reversed(self._layers):
            if _lookup(data, key)[0]:
                if name == "the environment":
                    origins = self._env_origins.items()
                    var = next((v for k, v in origins if key.startswith(k)), None)
                    return f"the environment ({var})" if var else "the environment"
                return str(name)
        return "defaults"

    def _validate(self) -> Settings:
        try:
            return Settings.model_validate(self._merged())
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                key = ".".join(str(p) for p in err["loc"])
                shown = "<hidden>" if "api_key" in key else repr(err.get("input"))
                problems.append(
                    f"{key} = {shown} (set in {self._source(key)}): {err['msg']}"
                    if err["type"] != "extra_forbidden"
                    else f"{key} is not a chinwag setting (set in {self._source(key)})"
                )
            first = exc.errors()[0]
            raise ConfigError(
                "Invalid configuration: " + "; ".join(problems) + ". Correct or remove it.",
                key=".".join(str(p) for p in first["loc"]),
                value=first.get("input"),
            ) from None

    def get(self, key: str, default: Any = ...) -> Any:
        """The value at a dotted key, e.g. `get("providers.openai.base_url")`."""
        found, value = _lookup(self.settings.model_dump(), key)
        if found:
            # Keep secrets wrapped so printing a value never leaks a key.
            if key.rsplit(".", 1)[-1] == "api_key" and value is not None:
                return SecretStr(
                    value.get_secret_value() if isinstance(value, SecretStr) else value
                )
            return value
        if default is not ...:
            return default
        raise ConfigError(
            f"Unknown config key {key!r}. See `Config().keys()` for the keys.", key=key
        )

    def set(self, key: str, value: Any) -> None:
        """Set a dotted key for this process (the code layer); validated at once."""
        name, data = self._layers[2]
        previous = data
        self._layers[2] = (name, _deep_merge(data, _nest(key, value)))
        try:
            self.settings = self._validate()
        except ConfigError:
            self._layers[2] = (name, previous)
            raise

    def save(self, key: str, value: Any) -> None:
        """Set a dotted key in the config file (and in this Config), validated first."""
        data = _deep_merge(_load_file(self.file), _nest(key, value))
        self.set(key, value)  # raises ConfigError, naming key and value, if it is invalid
        import yaml

        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    def shown(self) -> dict[str, Any]:
        """Every setting, with API keys masked: for printing."""

        def mask(node: Any, key: str = "") -> Any:
            if isinstance(node, dict):
                return {k: mask(v, k) for k, v in node.items()}
            if key == "api_key" and node is not None:
                return "***"
            return node

        shown: dict[str, Any] = mask(self.settings.model_dump(mode="json"))
        return shown

    def get_shown(self, key: str) -> Any:
        """A dotted key's value with API keys masked, at any depth."""
        return _lookup(self.shown(), key)[1]

    def keys(self) -> list[str]:
        """Every dotted key that has a value."""
        out: list[str] = []

        def walk(prefix: str, node: Any) -> None:
            if isinstance(node, dict) and node:
                for k, v in node.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            else:
                out.append(prefix)

        walk("", self.settings.model_dump())
        return out

    @property
    def store_url(self) -> str:
        """store.url, else the SQLite file in the data dir."""
        return self.settings.store.url or f"sqlite:///{self.paths.database}"

    def provider_settings(self, name: str) -> ProviderSettings:
        try:
            return self.settings.providers[name]
        except KeyError:
            known = ", ".join(sorted(self.settings.providers)) or "none"
            raise ConfigError(
                f"No provider named {name!r} is configured (configured: {known}). "
                f"Add it under 'providers:' in {self.file}.",
                key=f"providers.{name}",
            ) from None

    def context_window(self, model: str, provider_says: int | None = None) -> int:
        """models.<model>.context_window, else what the provider knows, else the default."""
        per_model = self.settings.models.get(model)
        if per_model and per_model.context_window:
            return per_model.context_window
        return provider_says or self.settings.context_window

    def __repr__(self) -> str:
        return f"Config(file={str(self.file)!r}, profile={self.profile!r})"
