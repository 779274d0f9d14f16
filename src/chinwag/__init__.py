"""chinwag: talk to language models from Python or from the `chinwag` command and shell.

    import chinwag
    with chinwag.Client() as client:
        print(client.ask("Say hello!").text)

The public names are the imports below, made on first use so that `import chinwag`
stays fast; type checkers read them as written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chinwag.version import __version__ as __version__

if TYPE_CHECKING:  # the public names, each once (`as` marks it exported)
    from chinwag.client.aio import (
        AsyncClient as AsyncClient,
    )
    from chinwag.client.sync import (
        Client as Client,
    )
    from chinwag.config import (
        Config as Config,
    )
    from chinwag.errors import (
        AccessError as AccessError,
        AuthenticationError as AuthenticationError,
        BadRequestError as BadRequestError,
        ChinwagError as ChinwagError,
        ConfigError as ConfigError,
        ConflictError as ConflictError,
        InputError as InputError,
        LimitError as LimitError,
        NotFoundError as NotFoundError,
        PermissionDeniedError as PermissionDeniedError,
        ProviderConnectionError as ProviderConnectionError,
        ProviderError as ProviderError,
        ProviderTimeoutError as ProviderTimeoutError,
        ProviderUnavailableError as ProviderUnavailableError,
        RateLimitError as RateLimitError,
        ResponseError as ResponseError,
        ServerConnectionError as ServerConnectionError,
        StoreError as StoreError,
    )
    from chinwag.streams import (
        AsyncStream as AsyncStream,
        Stream as Stream,
    )
    from chinwag.templates import (
        Rendered as Rendered,
        Template as Template,
    )
    from chinwag.types import (
        ApiKey as ApiKey,
        Attachment as Attachment,
        Bot as Bot,
        Conversation as Conversation,
        Done as Done,
        ErrorEvent as ErrorEvent,
        Event as Event,
        GenerationParams as GenerationParams,
        Health as Health,
        Message as Message,
        NewKey as NewKey,
        Reply as Reply,
        SearchEvent as SearchEvent,
        Source as Source,
        StatisticItem as StatisticItem,
        Statistics as Statistics,
        StatisticTotal as StatisticTotal,
        TextDelta as TextDelta,
        ToolCall as ToolCall,
        ToolCallEvent as ToolCallEvent,
        ToolResultEvent as ToolResultEvent,
        Usage as Usage,
        UsageEvent as UsageEvent,
        User as User,
    )
    from chinwag.workflows import (
        StepResult as StepResult,
        Workflow as Workflow,
        WorkflowResult as WorkflowResult,
    )


def _exports() -> dict[str, str]:
    """Each public name and its module, read once from the TYPE_CHECKING imports above."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"
    )
    return {
        alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }


_where: dict[str, str] | None = None


def __getattr__(name: str) -> Any:
    global _where
    if _where is None:
        _where = _exports()
    if name == "__all__":  # `from chinwag import *`
        return ["__version__", *_where]
    module = _where.get(name)
    if module is None:
        raise AttributeError(f"module 'chinwag' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_exports()})
