"""Model providers: the protocol, the registry and the choice of the default one.

Providers register under the `chinwag.providers` entry point group as
`type = "package.module:Factory"`, where Factory(name, settings, paths) returns a Provider.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from chinwag.config import Config, Paths, ProviderSettings
from chinwag.errors import ConfigError
from chinwag.providers.base import (
    ChatRequest,
    Finish,
    Provider,
    ProviderEvent,
    ProviderHealth,
    ToolCalls,
)
from chinwag.types import TextDelta, UsageEvent

__all__ = [
    "ChatRequest",
    "Finish",
    "Provider",
    "ProviderEvent",
    "ProviderHealth",
    "TextDelta",
    "ToolCalls",
    "UsageEvent",
    "choose_default",
    "create_provider",
]

ProviderFactory = Callable[[str, ProviderSettings, Paths], Provider]

# Built-ins resolve without scanning entry points, which costs tens of milliseconds.
_BUILTIN = {
    "openai": "chinwag.providers.openai:OpenAIProvider",
    "local": "chinwag.providers.local:LocalProvider",
}


def _load(target: str) -> ProviderFactory:
    module, _, attr = target.partition(":")
    factory: ProviderFactory = getattr(import_module(module), attr)
    return factory


def _factory(type_name: str) -> ProviderFactory:
    if type_name in _BUILTIN:
        return _load(_BUILTIN[type_name])
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group="chinwag.providers")}
    if type_name not in found:
        known = ", ".join(sorted(set(_BUILTIN) | set(found)))
        raise ConfigError(
            f"Unknown provider type {type_name!r} (known: {known}). "
            f"Install the plugin that provides it or fix the 'type' of the provider.",
            key="type",
            value=type_name,
        )
    factory: ProviderFactory = found[type_name].load()
    return factory


def create_provider(config: Config, name: str) -> Provider:
    """Build the provider configured under `providers.<name>`."""
    settings = config.provider_settings(name)
    return _factory(settings.type)(name, settings, config.paths)


def choose_default(config: Config) -> tuple[str, str]:
    """The default provider's name and why it was chosen.

    The configured one if any (`provider:`, or an OpenAI-compatible server named by
    OPENAI_BASE_URL / providers.openai.base_url); else OpenAI when OPENAI_API_KEY is
    set; else the embedded local model.
    """
    settings = config.settings
    if settings.provider:
        return settings.provider, "set in config (provider)"
    openai = settings.providers.get("openai")
    if openai is not None and openai.base_url not in (None, "https://api.openai.com/v1"):
        return "openai", f"an OpenAI-compatible server is configured at {openai.base_url}"
    if openai is not None and openai.api_key is not None:
        return "openai", "OPENAI_API_KEY is set"
    return "local", "no remote provider is configured: the embedded model, offline"
