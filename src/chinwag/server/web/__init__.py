"""The web chat page that `chinwag serve` serves at `/`: Jinja2 pages, one hand-written
script (static/app.js) and stylesheet, and vendored marked, DOMPurify and highlight.js.

The page talks to /api/v1 directly, signed in by a session cookie that the one
authentication dependency (chinwag.server.auth.caller) accepts beside API keys. Nothing
is loaded from anywhere but this server, so the page works offline.
"""

from chinwag.server.web.pages import mount

__all__ = ["mount"]
