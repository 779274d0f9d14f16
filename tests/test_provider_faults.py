"""Provider faults seen from the public API: streams that never end, servers that hang,
pages that are not answers, bad URLs and long Retry-After waits (issue 9, points 6 and 7).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import chinwag
from chinwag.errors import (
    ConfigError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    ResponseError,
)
from tests.conftest import Runner, make_config
from tests.fake_openai import FakeOpenAI, Script

NGINX_502 = """<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx/1.18.0 (Ubuntu)</center>
</body>
</html>
"""


def _client(server: FakeOpenAI, **settings: Any) -> chinwag.Client:
    values = {f"providers.openai.{key}": value for key, value in settings.items()}
    return chinwag.Client(make_config(server, **values))


# -- point 6: streams end -----------------------------------------------------------------


def test_keep_alive_comments_do_not_keep_a_stream_open(server: FakeOpenAI) -> None:
    server.script(Script(text="one two", pings=0.05))  # then `: ping` for up to a minute
    seen: list[str] = []
    with (
        _client(server, idle_timeout=0.5, max_retries=3) as client,
        pytest.raises(ProviderTimeoutError, match=r"providers\.openai\.idle_timeout") as caught,
    ):
        seen.extend(client.stream("talk, then stall"))
    assert "\n" not in str(caught.value)
    partial = caught.value.partial
    assert partial is not None
    assert "".join(seen) == partial.text == "one two"
    assert partial.status == "partial"
    with _client(server) as client:
        stored = client.conversations.history(partial.conversation_id)
    assert (stored[-1].role, stored[-1].content, stored[-1].status) == (
        "assistant",
        "one two",
        "partial",
    )
    assert len(server.requests) == 1  # a stream that has started is never retried


def test_keep_alive_comments_before_any_chunk_are_bounded_by_the_timeout(
    server: FakeOpenAI,
) -> None:
    server.script(Script(text="", role=False, pings=0.05))  # headers, then only comments
    with (
        _client(server, timeout=0.5, max_retries=3) as client,
        pytest.raises(
            ProviderTimeoutError, match=r"sent nothing for 0\.5 s \(providers\.openai\.timeout\)"
        ),
    ):
        list(client.stream("anyone there?"))
    assert len(server.requests) == 1


def test_a_stream_slower_than_the_deadline_stops_there(server: FakeOpenAI) -> None:
    server.script(Script(text=" ".join(["word"] * 40), chunk_delay=0.1))
    with (
        _client(server, idle_timeout=5, deadline=1) as client,
        pytest.raises(ProviderTimeoutError, match=r"providers\.openai\.deadline") as caught,
    ):
        for _ in client.stream("a long answer"):
            pass
    partial = caught.value.partial
    assert partial is not None
    assert partial.status == "partial"
    assert partial.text.startswith("word word")
    assert len(server.requests) == 1


def test_a_server_that_never_answers_fails_by_the_deadline(server: FakeOpenAI) -> None:
    server.script(*[Script(delay=60)] * 4)  # sends no headers (until the client hangs up)
    with (
        _client(server, timeout=30, deadline=1, max_retries=3) as client,
        pytest.raises(ProviderTimeoutError, match=r"within 1 s, retries included") as caught,
    ):
        client.ask("anyone there?")
    assert "providers.openai.deadline" in str(caught.value)
    assert len(server.requests) == 1


def test_retries_end_by_the_deadline(server: FakeOpenAI) -> None:
    server.script(*[Script(delay=60)] * 11)
    with (
        _client(server, timeout=0.3, deadline=3, max_retries=10) as client,
        pytest.raises(ProviderTimeoutError),
    ):
        client.ask("anyone there?")
    # Retried (0.3 s each, with backoff between), but not ten times: the deadline ends it.
    assert 1 < len(server.requests) < 11


def test_a_retry_after_past_the_deadline_is_not_waited_for(server: FakeOpenAI) -> None:
    server.script(Script(status=429, headers={"retry-after": "30"}), Script())
    with (
        _client(server, deadline=5, max_retries=2) as client,
        pytest.raises(RateLimitError, match="retry after 30 s") as caught,
    ):
        client.ask("hi")
    assert caught.value.retry_after == 30
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_time_the_caller_spends_between_chunks_is_not_the_providers(
    server: FakeOpenAI,
) -> None:
    server.script(Script(text="one two three four"))
    config = make_config(server, **{"providers.openai.deadline": 1})
    async with chinwag.AsyncClient(config) as client:
        stream = client.stream("take your time")
        async for _ in stream:
            await anyio.sleep(0.4)  # four chunks: longer than the deadline in all
    assert stream.reply.text == "one two three four"
    assert stream.reply.status == "complete"


# -- point 7: errors that say the right thing in one line ---------------------------------


def test_an_html_error_page_becomes_one_short_line(server: FakeOpenAI) -> None:
    server.script(Script(status=502, body=NGINX_502))
    with (
        _client(server, max_retries=0) as client,
        pytest.raises(ProviderUnavailableError) as caught,
    ):
        client.ask("hi")
    message = str(caught.value)
    assert "\n" not in message
    assert "answered 502: 502 Bad Gateway." in message
    assert "<" not in message
    assert caught.value.status_code == 502


def test_an_html_error_page_is_one_line_in_the_cli(server: FakeOpenAI, run: Runner) -> None:
    server.script(Script(status=502, body=NGINX_502))
    out = run("ask", "hi")
    assert out.returncode == 1
    assert len(out.stderr.splitlines()) == 1
    assert "502 Bad Gateway" in out.stderr
    assert "<" not in out.stderr


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("<html><title>Welcome to nginx!</title></html>", "text/html"),
        ('{"object": "chat.completion", "choices": []}', "application/json"),
    ],
)
def test_a_200_that_is_not_a_stream_is_a_response_error(
    server: FakeOpenAI, body: str, content_type: str
) -> None:
    server.script(Script(body=body, content_type=content_type))
    with (
        _client(server, max_retries=3) as client,
        pytest.raises(ResponseError, match="not an OpenAI-compatible streaming endpoint") as e,
    ):
        for _ in client.stream("hi"):
            pass
    assert content_type in str(e.value)
    assert "providers.openai.base_url" in str(e.value)
    assert len(server.requests) == 1  # not retried


@pytest.mark.parametrize("base_url", ["ftp://x", "localhost:8000", "127.0.0.1:8000/v1", ""])
def test_a_base_url_that_is_not_http_is_a_config_error(base_url: str) -> None:
    config = chinwag.Config(
        {"providers.openai.base_url": base_url or "http://", "providers.openai.model": "m"}
    )
    with chinwag.Client(config) as client, pytest.raises(ConfigError) as caught:
        client.ask("hi")
    assert caught.value.key == "providers.openai.base_url"
    assert "http:// or https://" in str(caught.value)


def test_openai_base_url_without_a_scheme_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:8000")
    with chinwag.Client() as client:
        with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
            client.ask("hi")
        health = client.health()
    assert not health.ok
    assert any("OPENAI_BASE_URL" in p.detail for p in health.providers if p.name == "openai")


@pytest.mark.parametrize("streamed", [True, False])
def test_an_answer_without_choices_is_an_error_streamed_or_not(
    server: FakeOpenAI, streamed: bool
) -> None:
    server.script(Script(no_choices=True))
    with _client(server) as client:
        answer = (lambda: list(client.stream("hi"))) if streamed else (lambda: client.ask("hi"))
        with pytest.raises(ResponseError, match="sent no answer") as caught:
            answer()
    assert caught.value.partial is not None
    assert caught.value.partial.status == "error"


def test_a_retry_after_beyond_the_ceiling_is_not_retried(server: FakeOpenAI) -> None:
    server.script(*[Script(status=429, headers={"retry-after": "3600"})] * 3, Script())
    with (
        _client(server, max_retries=2) as client,
        pytest.raises(RateLimitError, match="retry after 3600 s") as caught,
    ):
        client.ask("hi")
    assert caught.value.retry_after == 3600
    assert len(server.requests) == 1


def test_a_key_in_the_base_url_never_reaches_an_error_message(run: Runner) -> None:
    run.env["OPENAI_BASE_URL"] = "http://user:s3cret@127.0.0.1:9/v1?api_key=s3cret"
    out = run("hi")
    assert out.returncode == 1
    assert "s3cret" not in out.stderr
    assert "127.0.0.1:9" in out.stderr
