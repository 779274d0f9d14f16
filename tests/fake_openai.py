"""A real HTTP server on 127.0.0.1 that speaks the chat-completions protocol (JSON and SSE).

Tests and benchmarks script what it answers: normal streams, errors with headers,
streams cut mid-way, malformed chunks, slow answers, keep-alive comments, raw pages
(HTML from a proxy). It records every request. Scripts that wait (delay, pings) stop
when the client disconnects, and after at most a minute.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn


@dataclass
class Script:
    """One scripted answer. `text` is split into `chunks` unless chunks are given."""

    text: str | None = None  # None: echo the last user message as "You said: ..."
    chunks: list[str] | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error: str = "scripted failure"
    usage: bool = True  # send a usage chunk when the client asks for one
    cut_after: int | None = None  # drop the connection after this many chunks
    malformed_after: int | None = None  # send a broken chunk after this many
    delay: float = 0.0  # seconds before the response starts
    chunk_delay: float = 0.0  # seconds between streamed chunks
    tool_calls: list[dict[str, str]] | None = None  # {"id", "name", "arguments"} each
    body: str | None = None  # answer with this raw body (and `status`, `content_type`)
    content_type: str = "text/html"
    pings: float = 0.0  # after the chunks, send `: ping` comments this often, never finishing
    no_choices: bool = False  # answer with empty `choices` (usage only)
    role: bool = True  # open a stream with the role chunk, as OpenAI does


def _text(content: Any) -> str:
    """A message's text: its content, or the text of its parts (a list with image parts)."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if p.get("type") == "text")
    return content or ""


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


class FakeOpenAI:
    """Start with `with FakeOpenAI() as server:`; point clients at `server.base_url`."""

    def __init__(self, *, models: tuple[str, ...] = ("test-model", "other-model")) -> None:
        self.models = models
        self.scripts: deque[Script] = deque()
        self.default = Script()
        self.requests: list[dict[str, Any]] = []
        self.searches: list[str] = []  # queries to the SearXNG-style /search route
        self.search_results: list[dict[str, Any]] = []
        self.search_status = 200
        self.request_headers: list[dict[str, str]] = []
        self.disconnects = 0  # streams (with chunk_delay) the client left before their end
        self.model_lists = 0  # requests for /models
        # proto=IPPROTO_TCP lets asyncio set TCP_NODELAY on accepted connections; with
        # proto 0 every small write waits ~40 ms for a delayed ACK.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(
            self.app,
            log_level="critical",
            lifespan="off",
            interface="asgi3",
            access_log=False,
            backlog=2048,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def script(self, *scripts: Script) -> None:
        """Answer the next requests with these, in order; then with `default`."""
        self.scripts.extend(scripts)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake OpenAI server did not start within 10 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    # -- the ASGI app -------------------------------------------------------------------------

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        path = scope["path"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if path == "/search":  # SearXNG's JSON API
            from urllib.parse import parse_qs

            query = parse_qs(scope["query_string"].decode())
            self.searches.append(query.get("q", [""])[0])
            assert query.get("format") == ["json"]
            body = {"query": self.searches[-1], "results": self.search_results}
            await self._json(send, self.search_status, body)
            return
        if path.endswith("/models"):
            self.model_lists += 1
            body = {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]}
            await self._json(send, 200, body)
            return
        if not path.endswith("/chat/completions"):
            await self._json(send, 404, {"error": {"message": f"no route {path}"}})
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(raw)
        self.requests.append(request)
        self.request_headers.append(headers)
        script = self.scripts.popleft() if self.scripts else self.default
        if script.delay and await _disconnected(receive, script.delay):
            return
        if script.body is not None:
            payload = script.body.encode()
            head = [
                (b"content-type", script.content_type.encode()),
                (b"content-length", str(len(payload)).encode()),
            ]
            await send({"type": "http.response.start", "status": script.status, "headers": head})
            await send({"type": "http.response.body", "body": payload})
            return
        if script.status != 200:
            error = {"error": {"message": script.error, "type": "test_error"}}
            await self._json(send, script.status, error, script.headers)
            return
        text = script.text
        if text is None and script.tool_calls:
            text = ""
        if text is None:
            text = f"You said: {_text(request['messages'][-1].get('content'))}"
        chunks = script.chunks if script.chunks is not None else (_split(text) if text else [])
        if request.get("stream"):
            await self._stream(send, receive, request, script, chunks)
        else:
            await self._complete(send, request, script, "".join(chunks))

    async def _json(
        self, send: Any, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode()
        # A length (not chunked encoding) answers in one write: no Nagle stall on loopback.
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        raw_headers += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})

    def _usage(self, request: dict[str, Any], completion: list[str]) -> dict[str, int]:
        prompt = sum(len(_text(m.get("content")).split()) for m in request["messages"])
        return {
            "prompt_tokens": prompt,
            "completion_tokens": len(completion),
            "total_tokens": prompt + len(completion),
        }

    async def _complete(
        self, send: Any, request: dict[str, Any], script: Script, text: str
    ) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if script.tool_calls:
            message["tool_calls"] = [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in script.tool_calls
            ]  # fmt: skip
        body = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": request["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }
        if script.usage:
            body["usage"] = self._usage(request, text.split())
        if script.no_choices:
            body["choices"] = []
        if script.cut_after is not None:
            head = [(b"content-type", b"application/json"), (b"content-length", b"10000")]
            await send({"type": "http.response.start", "status": 200, "headers": head})
            await send({"type": "http.response.body", "body": b'{"id": "chat', "more_body": True})
            raise ConnectionAbortedError("scripted cut")
        if script.malformed_after is not None:
            await self._json(send, 200, {"choices": "not a list"})
            return
        await self._json(send, 200, body)

    async def _stream(
        self, send: Any, receive: Any, request: dict[str, Any], script: Script, chunks: list[str]
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        body: dict[str, Any] = {"type": "http.response.body", "more_body": True}
        if script.no_choices:
            empty = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "choices": []}
            for _ in chunks:
                await send({**body, "body": b"data: " + json.dumps(empty).encode() + b"\n\n"})
            chunks = []
        elif script.role:
            await send({**body, "body": _chunk({"role": "assistant", "content": ""})})
        for i, piece in enumerate(chunks):
            if script.cut_after is not None and i == script.cut_after:
                raise ConnectionAbortedError("scripted cut")  # uvicorn drops the connection
            if script.malformed_after is not None and i == script.malformed_after:
                await send({**body, "body": b'data: {"choices": [{"delta": \n\n'})
            await send({**body, "body": _chunk({"content": piece})})
            if script.chunk_delay and await _disconnected(receive, script.chunk_delay):
                self.disconnects += 1
                return
        if script.pings:
            until = time.monotonic() + 60
            while time.monotonic() < until:
                await send({**body, "body": b": ping\n\n"})
                if await _disconnected(receive, script.pings):
                    return
        for index, call in enumerate(script.tool_calls or ()):
            # As OpenAI streams them: id and name first, the arguments in pieces.
            head = {"index": index, "id": call["id"], "type": "function",
                    "function": {"name": call["name"], "arguments": ""}}  # fmt: skip
            await send({**body, "body": _chunk({"tool_calls": [head]})})
            half = len(call["arguments"]) // 2
            for piece in (call["arguments"][:half], call["arguments"][half:]):
                part = {"index": index, "function": {"arguments": piece}}
                await send({**body, "body": _chunk({"tool_calls": [part]})})
        finish = "tool_calls" if script.tool_calls else "stop"
        if not script.no_choices:
            await send({**body, "body": _chunk({}, finish)})
        if script.usage and request.get("stream_options", {}).get("include_usage"):
            usage = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": request["model"],
                "choices": [],
                "usage": self._usage(request, chunks),
            }
            await send({**body, "body": b"data: " + json.dumps(usage).encode() + b"\n\n"})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


async def _disconnected(receive: Any, seconds: float) -> bool:
    """Wait up to `seconds` (at most 60); True as soon as the client has gone."""
    try:
        async with asyncio.timeout(min(seconds, 60)):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return False
    return True


def _split(text: str) -> list[str]:
    """Split into word-sized pieces that keep their spaces, as models stream them."""
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def main() -> None:
    """Serve until killed, in its own process (benchmarks): prints the base URL first."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=0, help="stream this many chunks per answer")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between chunks")
    args = parser.parse_args()
    server = FakeOpenAI()
    if args.chunks:
        server.default = Script(
            chunks=[f" tok{i % 10}" for i in range(args.chunks)], chunk_delay=args.chunk_delay
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        print(server.base_url, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
