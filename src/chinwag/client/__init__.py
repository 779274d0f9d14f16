"""The public face of chinwag: AsyncClient, and Client, its blocking facade.

AsyncClient (aio.py) composes the engine's services: turns (ask, stream, chat) and the
sub-APIs that live with their ideas (chinwag.conversations, .bots, .stats, .templates,
.workflows). Client (sync.py) runs the same coroutines on one background event loop, so
every behaviour has one implementation.
"""

from chinwag.client.aio import AsyncClient
from chinwag.client.sync import Client

__all__ = ["AsyncClient", "Client"]
