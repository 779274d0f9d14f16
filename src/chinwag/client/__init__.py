"""The public face of chinwag: AsyncClient, and Client, its blocking facade.

AsyncClient (aio.py) composes the engine's services: turns (ask, stream, chat) and the
sub-APIs that live with their ideas (chinwag.conversations, .bots, .stats, .templates,
.workflows). Client (sync.py) runs the same coroutines on one background event loop, so
every behaviour has one implementation.

Import each from its module (`chinwag` exports both): `from chinwag import Client` then
loads the facade alone, and the engine, pydantic and anyio come with the first Client.
"""
