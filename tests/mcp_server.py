"""A small MCP server for the tests, written with the official SDK: stdio by default, or
streamable HTTP on 127.0.0.1 with `--http PORT`. MCP_PIDFILE, if set, gets its pid."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("notes")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()


@server.tool()
def touch(path: str) -> str:
    """Create a file (a tool with an effect, to see whether it ran)."""
    Path(path).write_text("touched")
    return f"created {path}"


@server.tool()
def crash() -> str:
    """End the server's process mid-call, as a crash would."""
    os._exit(1)


def main() -> None:
    if os.environ.get("MCP_PIDFILE"):
        Path(os.environ["MCP_PIDFILE"]).write_text(str(os.getpid()))
    if len(sys.argv) > 2 and sys.argv[1] == "--http":
        import uvicorn

        app = server.streamable_http_app()
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    else:
        server.run()


if __name__ == "__main__":
    main()
