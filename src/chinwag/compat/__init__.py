"""The seed documents' own interfaces, over chinwag's Client: code written for LLM Workflow
Engine (`lwe`), aBLT's wrapper (`ablt`) or hugchat_api (`hugchat`) runs with its imports
changed to `chinwag.compat.<name>`.

Each is a thin adapter: it maps the old names and shapes onto `Client` (or `AsyncClient`)
and keeps no chat logic of its own. The modules load on first use, so importing chinwag
pays nothing for them.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

_MODULES = ("ablt", "hugchat", "lwe")


def __getattr__(name: str) -> ModuleType:
    if name not in _MODULES:
        raise AttributeError(f"module 'chinwag.compat' has no attribute {name!r}")
    return import_module(f"chinwag.compat.{name}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULES})
