"""Model providers: the protocol, creating one from config, and the choice of the default.

Provider types are registered through the `register_providers` plugin hook
(chinwag.plugins): `openai` and `local` by chinwag itself, more by installed plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chinwag.config import Config
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

if TYPE_CHECKING:
    from chinwag.plugins import ProviderFactory

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


def _factory(type_name: str) -> ProviderFactory:
    from chinwag import plugins  # pluggy loads with the first provider, not with the client

    found = plugins.find("register_providers", type_name)
    if found is None:
        known = ", ".join(sorted(plugins.registered("register_providers")))
        failed = plugins.see_broken("register_providers")
        raise ConfigError(
            f"Unknown provider type {type_name!r} (known: {known}). Install the plugin that "
            f"provides it or fix the 'type' of the provider{failed}.",
            key="type",
            value=type_name,
        )
    factory: ProviderFactory = found.value
    return factory


def create_provider(config: Config, name: str) -> Provider:
    """Build the provider configured under `providers.<name>`."""
    from chinwag.keystore import mask_logs

    mask_logs()  # before the provider's first request can be logged
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
    if openai is not None and config.provider_settings("openai").api_key is not None:
        return "openai", "a key for openai is stored (chinwag keys set openai)"
    return "local", "no remote provider is configured: the embedded model, offline"
