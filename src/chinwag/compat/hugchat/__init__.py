"""hugchat_api over chinwag: `from chinwag.compat.hugchat import HuggingChat` (or from
`chinwag.compat.hugchat.core`, as hugchat_api had both)."""

from chinwag.compat.hugchat.core import Bot, HuggingChat, ListBots, Message, RequestData

__all__ = ["Bot", "HuggingChat", "ListBots", "Message", "RequestData"]
