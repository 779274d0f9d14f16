"""A real `chinwag serve` on 127.0.0.1, in its own process, for the server's tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def chinwag_serve(
    env: dict[str, str], *args: str, timeout: float = 30
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start `chinwag serve` with this environment; yield its base URL and the process.
    It is stopped with SIGTERM (and killed if it will not stop)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chinwag", "serve", "--port", str(port), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"chinwag serve exited: {proc.stderr.read() if proc.stderr else ''}"
                )
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("chinwag serve did not start in time")
            time.sleep(0.1)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def server_env(base_env: dict[str, str]) -> dict[str, str]:
    """The `run` fixture's environment (CHINWAG_HOME, the fake provider), for a server."""
    return {**{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}, **base_env}
