"""A fast OpenAI-protocol upstream on 127.0.0.1 for bench_server.py: canned answers from a
bare asyncio protocol, so that it costs tens of microseconds a request and what is
measured is the server in front of it, not this one.

POST .../chat/completions answers a JSON completion, or (with `"stream": true` in the
body) an SSE stream of `--chunks` chunks with a usage chunk; GET .../models lists one
model. HTTP/1.1 keep-alive, Content-Length bodies. Prints its base URL, then serves until
SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
from typing import ClassVar

MODEL = "test-model"


def _response(status: str, kind: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {len(body)}\r\n"
        "connection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def canned(chunks: int) -> dict[str, bytes]:
    """The three answers, built once."""
    words = [f" tok{i % 10}" for i in range(chunks)]
    usage = {"prompt_tokens": 3, "completion_tokens": chunks, "total_tokens": 3 + chunks}
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
            "model": MODEL}  # fmt: skip

    def event(delta: dict[str, str], finish: str | None = None) -> bytes:
        body = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    sse = event({"role": "assistant", "content": ""})
    sse += b"".join(event({"content": w}) for w in words) + event({}, "stop")
    sse += b"data: " + json.dumps({**head, "choices": [], "usage": usage}).encode() + b"\n\n"
    sse += b"data: [DONE]\n\n"
    completion = {
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": MODEL,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "".join(words)}}],
        "usage": usage,
    }  # fmt: skip
    models = {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]}
    return {
        "json": _response("200 OK", "application/json", json.dumps(completion).encode()),
        "sse": _response("200 OK", "text/event-stream", sse),
        "models": _response("200 OK", "application/json", json.dumps(models).encode()),
        "missing": _response("404 Not Found", "application/json", b'{"error":{"message":"no"}}'),
    }


class Upstream(asyncio.Protocol):
    answers: ClassVar[dict[str, bytes]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, path, _ = head.split(" ", 2)
            if path.endswith("/chat/completions") and method == "POST":
                streamed = b'"stream":true' in body.replace(b" ", b"")
                answer = self.answers["sse" if streamed else "json"]
            elif path.endswith("/models"):
                answer = self.answers["models"]
            else:
                answer = self.answers["missing"]
            self.transport.write(answer)


async def serve(chunks: int) -> None:
    Upstream.answers = canned(chunks)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, sock=sock, backlog=4096)
    print(f"http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=16)
    asyncio.run(serve(parser.parse_args().chunks))


if __name__ == "__main__":
    main()
