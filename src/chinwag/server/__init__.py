"""`chinwag serve`: the engine as a multi-user HTTP service (FastAPI, `chinwag[server]`).

It speaks the OpenAI API under /v1 (so the openai SDK, Open WebUI or curl can use
chinwag's bots and providers) and chinwag's own under /api/v1. Routes check, authenticate
and call the client; they hold no chat logic. Errors use OpenAI's envelope.
"""

from chinwag.server.app import create_app

__all__ = ["create_app"]
