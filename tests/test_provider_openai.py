"""The OpenAI-compatible provider against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from chinwag.config import ProviderSettings
from chinwag.errors import (
    AuthenticationError,
    BadRequestError,
    ProviderConnectionError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    ResponseError,
)
from chinwag.providers import ChatRequest, Finish
from chinwag.providers.openai import OpenAIProvider
from chinwag.providers.retry import parse_retry_after
from chinwag.types import GenerationParams, TextDelta, UsageEvent
from tests.conftest import Runner
from tests.fake_openai import FakeOpenAI, Script

pytestmark = pytest.mark.anyio


def _provider(base_url: str, **settings: Any) -> OpenAIProvider:
    return OpenAIProvider(
        "test", ProviderSettings(base_url=base_url, model="test-model", **settings)
    )


async def _run(provider: OpenAIProvider, prompt: str = "hi", **params: Any) -> list[Any]:
    request = ChatRequest(
        model="test-model",
        messages=[{"role": "user", "content": prompt}],
        params=GenerationParams(**params),
    )
    try:
        return [event async for event in provider.stream(request)]
    finally:
        await provider.aclose()


async def test_streams_deltas_usage_and_finish(server: FakeOpenAI) -> None:
    events = await _run(_provider(server.base_url, api_key="sk-test"), "three words please")
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(texts) == "You said: three words please"
    assert len(texts) > 1
    usage = next(e.usage for e in events if isinstance(e, UsageEvent))
    assert (usage.prompt_tokens, usage.completion_tokens) == (3, len(texts))
    assert events[-1] == Finish("stop")
    request = server.requests[-1]
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    assert server.request_headers[-1]["authorization"] == "Bearer sk-test"


async def test_sends_generation_params(server: FakeOpenAI) -> None:
    await _run(_provider(server.base_url), temperature=0.2, max_tokens=7, top_p=0.5, seed=3)
    request = server.requests[-1]
    assert (request["temperature"], request["max_tokens"], request["top_p"]) == (0.2, 7, 0.5)
    assert request["seed"] == 3
    assert "stop" not in request  # unset params are left to the server


async def test_429_waits_for_retry_after_then_succeeds(server: FakeOpenAI) -> None:
    server.script(Script(status=429, headers={"retry-after": "1"}))
    started = time.monotonic()
    events = await _run(_provider(server.base_url))
    assert time.monotonic() - started >= 1.0
    assert len(server.requests) == 2
    assert any(isinstance(e, TextDelta) for e in events)


async def test_429_exhausted_raises_rate_limit_with_retry_after(server: FakeOpenAI) -> None:
    server.script(*[Script(status=429, headers={"retry-after-ms": "20"})] * 3)
    with pytest.raises(RateLimitError) as caught:
        await _run(_provider(server.base_url, max_retries=2))
    assert caught.value.retry_after == pytest.approx(0.02)
    assert caught.value.status_code == 429
    assert len(server.requests) == 3  # the first try and two retries
    assert "Rate limited" in str(caught.value)


async def test_500_is_retried_then_reported(server: FakeOpenAI) -> None:
    server.script(*[Script(status=500, headers={"retry-after-ms": "10"})] * 2)
    with pytest.raises(ProviderUnavailableError, match="answered 500"):
        await _run(_provider(server.base_url, max_retries=1))
    assert len(server.requests) == 2


async def test_server_can_forbid_a_retry(server: FakeOpenAI) -> None:
    server.script(Script(status=503, headers={"x-should-retry": "false"}))
    with pytest.raises(ProviderUnavailableError):
        await _run(_provider(server.base_url, max_retries=3))
    assert len(server.requests) == 1


async def test_400_is_not_retried(server: FakeOpenAI) -> None:
    server.script(Script(status=400, error="bad temperature"))
    with pytest.raises(BadRequestError, match="bad temperature"):
        await _run(_provider(server.base_url))
    assert len(server.requests) == 1


async def test_408_and_409_are_retried(server: FakeOpenAI) -> None:
    server.script(
        Script(status=408, headers={"retry-after-ms": "10"}),
        Script(status=409, headers={"retry-after-ms": "10"}),
    )
    await _run(_provider(server.base_url))
    assert len(server.requests) == 3


async def test_401_says_to_check_the_key(server: FakeOpenAI) -> None:
    server.script(Script(status=401, error="invalid api key"))
    with pytest.raises(AuthenticationError, match="API key"):
        await _run(_provider(server.base_url, api_key="sk-wrong"))


async def test_missing_key_for_openai_fails_before_any_request() -> None:
    provider = OpenAIProvider("openai", ProviderSettings())
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        await _run(provider)


async def test_a_stream_cut_midway_is_a_connection_error_and_not_retried(
    server: FakeOpenAI,
) -> None:
    server.script(Script(text="one two three four five", cut_after=2))
    received: list[str] = []
    provider = _provider(server.base_url, max_retries=3)
    request = ChatRequest(model="test-model", messages=[{"role": "user", "content": "x"}])

    async def consume() -> None:
        async for event in provider.stream(request):
            if isinstance(event, TextDelta):
                received.append(event.text)

    with pytest.raises(ProviderConnectionError, match="broke mid-answer"):
        await consume()
    await provider.aclose()
    assert "".join(received) == "one two"
    assert len(server.requests) == 1  # never retried after the first streamed byte


async def test_a_malformed_chunk_is_a_response_error(server: FakeOpenAI) -> None:
    server.script(Script(text="a b c", malformed_after=1))
    with pytest.raises(ResponseError, match="malformed chunk"):
        await _run(_provider(server.base_url))


async def test_a_slow_server_times_out(server: FakeOpenAI) -> None:
    server.script(Script(delay=2.0))
    with pytest.raises(ProviderTimeoutError, match=r"timeout"):
        await _run(_provider(server.base_url, timeout=0.3, max_retries=0))


async def test_nothing_listening_is_a_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ProviderConnectionError, match="Is the server running"):
        await _run(_provider(f"http://127.0.0.1:{port}/v1", max_retries=0))


async def test_models_and_health(server: FakeOpenAI) -> None:
    provider = _provider(server.base_url)
    try:
        assert await provider.models() == ["other-model", "test-model"]
        health = await provider.health()
        assert health.ok
        assert health.latency_ms is not None
        assert health.latency_ms > 0
    finally:
        await provider.aclose()
    assert not server.requests  # no completion was paid for


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    in_two = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 2))
    assert 0 < (parse_retry_after({"retry-after": in_two}) or 0) <= 2.5
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def _streams_in_a_child(run: Runner, n: int, limit: str) -> tuple[int, str, int]:
    """n concurrent streams from one AsyncClient in a child whose open-files limit is set
    by `limit` (soft, hard): how many failed, the first error, the soft limit after."""
    code = f"""
        import asyncio, resource, chinwag

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}))

        async def main():
            async with chinwag.AsyncClient() as client:
                async def one(i):
                    return await client.stream(f"s{{i}}").text()

                streams = (one(i) for i in range({n}))
                results = await asyncio.gather(*streams, return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            print(len(errors), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
            print(errors[0] if errors else "")

        asyncio.run(main())
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=run.env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    counts, first = done.stdout.split("\n", 1)
    failed, soft = counts.split()
    return int(failed), first.strip(), int(soft)


@pytest.mark.skipif(sys.platform == "win32", reason="no RLIMIT_NOFILE on Windows")
def test_many_concurrent_streams_under_a_low_open_files_limit(
    server: FakeOpenAI, run: Runner
) -> None:
    # A soft limit below the pool's size (Linux often starts programs at 1024) would end
    # streams with "Too many open files"; the client raises it as far as the hard limit.
    # Each answer takes a second, so all 400 connections are open at once.
    server.script(*(Script(text="one two three", chunk_delay=0.5) for _ in range(400)))
    failed, first, soft = _streams_in_a_child(run, 400, "256, hard")
    assert (failed, first) == (0, "")
    assert soft > 400
    assert len(server.requests) == 400


@pytest.mark.skipif(sys.platform == "win32", reason="no RLIMIT_NOFILE on Windows")
def test_running_out_of_open_files_says_so(server: FakeOpenAI, run: Runner) -> None:
    # With the hard limit low too, raising the soft limit cannot help: the error must say
    # what ran out and how to raise it, not suggest that the server is down.
    server.script(*(Script(text="one two three", chunk_delay=0.5) for _ in range(100)))
    failed, first, soft = _streams_in_a_child(run, 100, "64, 64")
    assert failed > 0
    assert soft == 64
    assert "ran out of open files (64)" in first
    assert "ulimit -n" in first
