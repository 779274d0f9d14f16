"""`chinwag serve` through real HTTP on 127.0.0.1: the openai SDK as its own client, and
httpx for chinwag's API."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from chinwag import Client
from tests.conftest import PNG, Runner, make_config
from tests.fake_openai import FakeOpenAI, Script
from tests.server import chinwag_serve


@pytest.fixture
def served(run: Runner) -> Iterator[str]:
    with chinwag_serve(run.env) as (base, _):
        yield base


@pytest.fixture
def sdk(served: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{served}/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_the_openai_sdk_lists_bots_and_models(sdk: openai.OpenAI) -> None:
    ids = [m.id for m in sdk.models.list()]
    assert "default" in ids
    assert "openai/test-model" in ids


def test_the_openai_sdk_chats_streamed_and_not(
    sdk: openai.OpenAI, server: FakeOpenAI, served: str
) -> None:
    server.script(Script(text="one two three"), Script(text="four five"))
    whole = sdk.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "count"}], temperature=0.5
    )
    assert whole.choices[0].message.content == "one two three"
    assert whole.usage is not None
    assert whole.usage.completion_tokens == 3
    assert server.requests[-1]["temperature"] == 0.5
    stream = sdk.chat.completions.create(
        model="openai/test-model",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "go"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "four five"
    assert chunks[-1].usage is not None
    assert server.requests[-1]["messages"][0]["content"] == "Be brief."
    # Stateless by default, yet counted: no conversation, two requests in today's usage.
    assert httpx.get(f"{served}/api/v1/conversations").json() == []
    day = httpx.get(f"{served}/api/v1/stats/day").json()
    assert day["requests"] == 2


@pytest.mark.anyio
async def test_the_async_sdk_streams(served: str, server: FakeOpenAI) -> None:
    server.script(Script(text="a b c"))
    async with openai.AsyncOpenAI(base_url=f"{served}/v1", api_key="x", max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "a b c"


def test_a_conversation_header_makes_a_stored_turn(served: str, server: FakeOpenAI) -> None:
    body = {"model": "default", "messages": [{"role": "user", "content": "first"}]}
    made = httpx.post(
        f"{served}/v1/chat/completions", json=body, headers={"x-chinwag-conversation": "new"}
    )
    assert made.status_code == 200
    cid = made.headers["x-chinwag-conversation"]
    body["messages"] = [{"role": "user", "content": "second"}]
    again = httpx.post(
        f"{served}/v1/chat/completions", json=body, headers={"x-chinwag-conversation": cid}
    )
    assert again.json()["choices"][0]["message"]["content"] == "You said: second"
    history = httpx.get(f"{served}/api/v1/conversations/{cid}/messages").json()
    assert [m["content"] for m in history] == [
        "first", "You said: first", "second", "You said: second",
    ]  # fmt: skip


def test_openais_user_field_is_recorded_and_never_a_scope(served: str) -> None:
    body = {
        "model": "default",
        "messages": [{"role": "user", "content": "for my customer"}],
        "user": "customer-42",
    }
    made = httpx.post(
        f"{served}/v1/chat/completions", json=body, headers={"x-chinwag-conversation": "new"}
    )
    cid = made.headers["x-chinwag-conversation"]
    question = httpx.get(f"{served}/api/v1/conversations/{cid}/messages").json()[0]
    assert question["meta"]["end_user"] == "customer-42"
    # The turn is the server's own user's: nothing was filed under the name sent.
    assert (
        httpx.get(f"{served}/api/v1/stats/day", params={"user": "customer-42"}).json()["requests"]
        == 0
    )
    too_long = {**body, "user": "x" * 300}
    refused = httpx.post(f"{served}/v1/chat/completions", json=too_long)
    assert refused.status_code == 400
    assert "at most 256" in refused.json()["error"]["message"]


def test_a_new_conversation_is_kept_only_when_its_question_is(
    served: str, server: FakeOpenAI
) -> None:
    url = f"{served}/v1/chat/completions"
    new = {"x-chinwag-conversation": "new"}
    asked = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
    for stream in (False, True):
        bad = httpx.post(url, json={**asked, "temperature": 9, "stream": stream}, headers=new)
        assert bad.status_code == 400
        assert "x-chinwag-conversation" not in bad.headers
    assert httpx.get(f"{served}/api/v1/conversations").json() == []  # bad input left nothing
    server.script(Script(status=500))  # the provider fails after the question is stored
    failed = httpx.post(url, json=asked, headers=new)
    assert failed.status_code == 502
    cid = failed.headers["x-chinwag-conversation"]
    history = httpx.get(f"{served}/api/v1/conversations/{cid}/messages").json()
    assert [(m["role"], m["status"]) for m in history] == [
        ("user", "complete"),
        ("assistant", "error"),
    ]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404),
        ({"model": "default", "messages": []}, 400),
        ({"model": "default", "messages": [{"role": "user", "content": 5}]}, 400),
        (
            {"model": "default", "messages": [{"role": "user", "content": "x"}], "temperature": 9},
            400,
        ),
        ({"messages": [{"role": "user", "content": "x"}]}, 400),
        ({"model": "default", "messages": [{"role": "user", "content": "a\u0000b"}]}, 400),
    ],
)
def test_bad_requests_get_4xx_in_the_envelope_and_store_nothing(
    served: str, body: dict[str, object], status: int, server: FakeOpenAI
) -> None:
    for stream in (False, True):
        answer = httpx.post(f"{served}/v1/chat/completions", json={**body, "stream": stream})
        assert answer.status_code == status, answer.text
        error = answer.json()["error"]
        assert set(error) >= {"message", "type", "param", "code"}
    assert server.requests == []
    assert httpx.get(f"{served}/api/v1/stats/day").json()["requests"] == 0


@pytest.mark.parametrize(
    "raw",
    [
        b'"model": "openai/' + b"x" * 300 + b'"',  # longer than a model name can be
        b'"model": "openai/a\\u0000"',
        b'"model": "default", "tools": [{"type": "function", "function": {"name": "f", '
        b'"parameters": {"x": NaN}}}]',
        b'"model": "default", "tools": [{"type": "function", "function": {"name": "\\ud800"}}]',
        b'"model": "default", "tools": [{"type": "function", "function": {"name": "f"}}], '
        b'"tool_choice": {"type": "function", "function": {"name": "\\udc00"}}',
        b'"model": "default", "tools": [{"type": "function", "function": {"name": "f"}}], '
        b'"tool_choice": {"x": Infinity}',
    ],
)
def test_what_json_cannot_carry_is_a_4xx(served: str, raw: bytes, server: FakeOpenAI) -> None:
    for stream in (b"false", b"true"):
        body = b'{"messages": [{"role": "user", "content": "hi"}], "stream": ' + stream
        answer = httpx.post(
            f"{served}/v1/chat/completions",
            content=body + b", " + raw + b"}",
            headers={"content-type": "application/json"},
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "InputError"
    assert server.requests == []


def test_a_bot_names_a_model_the_store_can_hold(served: str) -> None:
    made = httpx.post(f"{served}/api/v1/bots", json={"name": "Long", "model": "m" * 201})
    assert made.status_code == 400
    assert "model" in made.json()["error"]["message"]


def test_the_servers_own_failures_do_not_show_its_files(run: Runner) -> None:
    env = {**run.env, "CHINWAG_STORE__LOCK_TIMEOUT": "0.2"}
    with chinwag_serve(env) as (base, _):
        path = f"{run.env['CHINWAG_HOME']}/chinwag.db"
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")  # another program holds the database
            locked = httpx.post(f"{base}/api/v1/conversations", json={}, timeout=30)
        finally:
            other.close()
        assert locked.status_code == 503
        error = locked.json()["error"]
        assert error["code"] == "StoreError"
        assert run.env["CHINWAG_HOME"] not in error["message"]
        assert "server's log" in error["message"]
        assert httpx.post(f"{base}/api/v1/conversations", json={}).status_code == 201


def test_malformed_and_oversized_bodies(run: Runner) -> None:
    # The routes that take files allow them on top of server.max_body (1,000,000): here
    # attachments.max_total in base64 (1,336) and 1,000 for each file's name (20 files).
    with chinwag_serve({**run.env, "CHINWAG_ATTACHMENTS__MAX_TOTAL": "1000"}) as (served, _):
        _oversized_bodies(served)


def _oversized_bodies(served: str) -> None:
    headers = {"content-type": "application/json"}
    bots = httpx.post(f"{served}/api/v1/bots", content=b"x" * 1_010_000, headers=headers)
    assert bots.status_code == 413
    assert bots.json()["error"]["message"] == (
        "The request body is over 1,000,000 bytes (server.max_body)."
    )
    url = f"{served}/v1/chat/completions"
    bad = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    for unreadable in (b'{"model": "\xff"}', b"[" * 100_000 + b"]" * 100_000):
        refused = httpx.post(url, content=unreadable, headers={"content-type": "application/json"})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "InputError"
        assert "UTF-8 JSON" in refused.json()["error"]["message"]
    asked = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
    for encoding in ("utf-8-sig", "utf-16"):  # read as FastAPI's json.loads reads them
        bom = httpx.post(url, content=json.dumps(asked).encode(encoding), headers=headers)
        assert bom.status_code == 200, encoding
    for kind in ("text/plain", "application/x-www-form-urlencoded"):
        typed = httpx.post(url, content=json.dumps(asked), headers={"content-type": kind})
        assert typed.status_code == 400, kind
        assert "application/json" in typed.json()["error"]["message"]
    big = httpx.post(url, content=b"x" * 1_100_000, headers={"content-type": "application/json"})
    assert big.status_code == 413
    assert big.json()["error"]["message"] == (
        "The request body is over 1,021,336 bytes (server.max_body and attachments.*)."
    )

    def pieces(total: int) -> Iterator[bytes]:  # no length: sent chunked
        yield b'{"model": "default", "messages": [{"role": "user", "content": "'
        for _ in range(total // 65_536):
            yield b"x" * 65_536
        yield b'"}]}'

    chunked = httpx.post(url, content=pieces(5_000_000), headers=headers)
    assert chunked.status_code == 413
    assert "server.max_body" in chunked.json()["error"]["message"]
    small = httpx.post(url, content=pieces(500_000), headers=headers)
    assert small.status_code == 200
    assert small.json()["choices"][0]["message"]["content"].startswith("You said: xxx")


def test_a_failure_after_the_first_byte_is_one_error_frame(served: str, server: FakeOpenAI) -> None:
    server.script(Script(text=" ".join(f"w{i}" for i in range(20)), cut_after=5))
    body = {"model": "default", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    with httpx.stream("POST", f"{served}/v1/chat/completions", json=body) as answer:
        assert answer.status_code == 200
        frames = [line[6:] for line in answer.iter_lines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    error = json.loads(frames[-2])["error"]
    assert error["code"] == "ProviderConnectionError"
    assert "Traceback" not in error["message"]


def test_a_provider_failure_before_the_first_byte_is_a_real_status(
    served: str, server: FakeOpenAI
) -> None:
    server.script(Script(status=429, headers={"retry-after": "7"}))
    body = {"model": "default", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    answer = httpx.post(f"{served}/v1/chat/completions", json=body)
    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "7"
    assert answer.json()["error"]["code"] == "RateLimitError"


def test_chinwags_own_api_does_the_library_s_work(served: str, server: FakeOpenAI) -> None:
    api = f"{served}/api/v1"
    bot = httpx.post(f"{api}/bots", json={"name": "Poet", "system_prompt": "Rhyme."}).json()
    assert bot["slug"] == "poet"
    made = httpx.post(f"{api}/conversations", json={"bot": "poet", "title": "Verse"}).json()
    cid = made["id"]
    reply = httpx.post(f"{api}/conversations/{cid}/messages", json={"prompt": "tea"}).json()
    assert reply["text"] == "You said: tea"
    assert server.requests[-1]["messages"][0]["content"] == "Rhyme."
    with httpx.stream(
        "POST", f"{api}/conversations/{cid}/messages", json={"prompt": "more", "stream": True}
    ) as streamed:
        events = [json.loads(line[6:]) for line in streamed.iter_lines()
                  if line.startswith("data: {")]  # fmt: skip
    assert [e["type"] for e in events][-2:] == ["usage", "done"]
    retried = httpx.post(f"{api}/conversations/{cid}/retry", json={}).json()
    assert retried["conversation_id"] == cid
    everything = httpx.get(f"{api}/conversations/{cid}/messages", params={"all": "true"}).json()
    assert len(everything) == 5  # two questions, three answers (one on another branch)
    found = httpx.get(f"{api}/conversations", params={"q": "MORE"}).json()
    assert [c["id"] for c in found] == [cid]
    changed = httpx.patch(f"{api}/conversations/{cid}", json={"title": "Tea time"}).json()
    assert changed["title"] == "Tea time"
    one_shot = httpx.post(
        f"{api}/chat", json={"bot": "poet", "prompt": "hello", "language": "French"}
    ).json()
    assert one_shot["bot"] == bot["uid"]
    stats = httpx.get(f"{api}/stats/usage").json()
    assert stats["total"]["requests"] == 4
    span = {"start_date": "2000-01-01", "empty_days": "false"}  # past 366 days: used ones only
    used = httpx.get(f"{api}/stats/usage", params=span).json()
    assert [item["requests"] for item in used["items"]] == [4]
    assert httpx.delete(f"{api}/conversations/{cid}").status_code == 204
    missing = httpx.get(f"{api}/conversations/{cid}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NotFoundError"


def _data_url(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def test_the_openai_sdk_sends_images_through(
    sdk: openai.OpenAI, server: FakeOpenAI, served: str
) -> None:
    image = {"type": "image_url", "image_url": {"url": _data_url(PNG)}}
    question = [{"type": "text", "text": "What is this?"}, image]
    whole = sdk.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": question}],  # type: ignore[misc,list-item]
    )
    assert whole.choices[0].message.content == "You said: What is this?"
    assert server.requests[-1]["messages"][-1]["content"] == question  # passed through
    # A stored turn keeps the image with its question, for its user to fetch.
    body = {"model": "default", "messages": [{"role": "user", "content": question}]}
    made = httpx.post(
        f"{served}/v1/chat/completions", json=body, headers={"x-chinwag-conversation": "new"}
    )
    cid = made.headers["x-chinwag-conversation"]
    (kept, _) = httpx.get(f"{served}/api/v1/conversations/{cid}/messages").json()
    assert [(f["name"], f["media_type"]) for f in kept["attachments"]] == [
        ("attachment-1.png", "image/png")
    ]
    fetched = httpx.get(f"{served}/api/v1/attachments/{kept['attachments'][0]['sha256']}")
    assert (fetched.content, fetched.headers["content-type"]) == (PNG, "image/png")
    assert fetched.headers["content-disposition"] == "attachment; filename*=UTF-8''attachment-1.png"
    sent = len(server.requests)
    # The embedded model takes no images: refused before anything is stored or sent.
    for model, parts, message in [
        ("local/gemma-3-270m-q4_k_m", question, "'local' (model gemma-3-270m-q4_k_m) takes no"),
        ("default", [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
         "fetches none from the web"),
        ("default", [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}],
         "must be a text, image_url or file part"),
    ]:  # fmt: skip
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": parts}],  # type: ignore[misc,list-item]
                stream=True,
            )
        assert message in refused.value.message
        assert refused.value.code == "InputError"
    assert len(server.requests) == sent
    assert [c["id"] for c in httpx.get(f"{served}/api/v1/conversations").json()] == [cid]


def test_chinwags_api_takes_files_in_base64(run: Runner, server: FakeOpenAI) -> None:
    env = {**run.env, "CHINWAG_ATTACHMENTS__MAX_BYTES": "2000000"}
    with chinwag_serve(env) as (served, _):
        chat = f"{served}/api/v1/chat"

        def ask(*files: dict[str, str]) -> httpx.Response:
            return httpx.post(chat, json={"prompt": "Look", "files": list(files)}, timeout=30)

        def file(name: str, data: bytes) -> dict[str, str]:
            return {"name": name, "data": base64.b64encode(data).decode()}

        # 1.2 MB: over server.max_body (1 MB), which files do not count against.
        big = PNG + os.urandom(1_200_000)
        reply = ask(file("note.txt", b"Tea at five."), file("big.png", big))
        assert reply.status_code == 200, reply.text
        text, image = server.requests[-1]["messages"][-1]["content"]
        assert text["text"] == "File: note.txt\n```\nTea at five.\n```\n\nLook"
        assert image["image_url"]["url"] == _data_url(big)
        sent = len(server.requests)
        for files, message in [
            ([file("huge.png", PNG + bytes(2_000_000))], "over the limit of 2,000,000 for one"),
            ([file("x.bin", b"\x00\x01")], "x.bin is binary data of an unknown type"),
            ([{"name": "a.txt", "data": "not base64!"}], "files[0].data is not valid base64"),
            ([{"name": "", "data": ""}], "files.0.name"),
        ]:
            refused = ask(*files)
            assert refused.status_code == 400
            assert message in refused.json()["error"]["message"]
            assert refused.json()["error"]["code"] == "InputError"
        assert len(server.requests) == sent
        listed = httpx.get(f"{served}/api/v1/conversations").json()
        assert len(listed) == 1  # the refused ones stored nothing


def test_the_openapi_document_lists_every_route(served: str) -> None:
    spec = httpx.get(f"{served}/openapi.json").json()
    assert "/v1/chat/completions" in spec["paths"]
    assert "/api/v1/conversations/{cid}/retry" in spec["paths"]
    # Its errors are those the server sends: the envelope, and 400 for a body that fails
    # validation, never FastAPI's 422.
    assert "422" not in json.dumps(spec)
    assert "HTTPValidationError" not in json.dumps(spec)
    answers = spec["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert answers["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    envelope = spec["components"]["schemas"]["Error"]["properties"]["error"]
    assert set(envelope["required"]) == {"message", "type", "code"}


@pytest.mark.parametrize("drain", [30, 1])
def test_sigterm_lets_answers_finish_or_keeps_them_partial(
    run: Runner, server: FakeOpenAI, drain: int
) -> None:
    server.script(Script(text=" ".join(f"w{i}" for i in range(60)), chunk_delay=0.05))
    env = {**run.env, "CHINWAG_SERVER__DRAIN": str(drain)}
    with chinwag_serve(env) as (base, proc):
        api = f"{base}/api/v1"
        cid = httpx.post(f"{api}/conversations", json={}).json()["id"]
        body = {"prompt": "count", "stream": True}
        seen = []
        url = f"{api}/conversations/{cid}/messages"
        # Past the drain time the server ends the connection: the reader sees it cut.
        with (
            contextlib.suppress(httpx.RemoteProtocolError),
            httpx.stream("POST", url, json=body) as answer,
        ):
            for line in answer.iter_lines():
                if line.startswith('data: {"type":"text"'):
                    seen.append(line)
                    if len(seen) == 5:
                        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
    database = f"sqlite:///{run.env['CHINWAG_HOME']}/chinwag.db"
    with Client(make_config(server, **{"store.url": database})) as client:
        stored = client.conversations.history(cid, user="local")[-1]
    if drain == 30:
        assert stored.status == "complete"
        assert stored.content.endswith("w59")
    else:
        assert stored.status == "partial"
        assert stored.content.startswith("w0 w1 w2 w3")


def test_serve_refuses_what_it_cannot_do_safely(run: Runner) -> None:
    wide = run("serve", "--host", "0.0.0.0")
    assert wide.returncode == 2
    assert "chinwag keys create" in wide.stderr
    workers = run("serve", "--workers", "2")
    assert workers.returncode == 2
    assert "needs PostgreSQL" in workers.stderr


def test_the_openai_sdk_runs_its_own_tools_through_the_server(
    sdk: openai.OpenAI, server: FakeOpenAI
) -> None:
    tools: Any = [{"type": "function", "function": {
        "name": "weather", "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }}]  # fmt: skip
    call = {"id": "call_1", "name": "weather", "arguments": '{"city": "Oslo"}'}
    server.script(Script(tool_calls=[call]), Script(tool_calls=[call]), Script(text="Rain."))
    asked: Any = [{"role": "user", "content": "Umbrella in Oslo?"}]
    first = sdk.chat.completions.create(
        model="default",
        messages=asked,
        tools=tools,
        tool_choice="auto",
    )
    assert first.choices[0].finish_reason == "tool_calls"
    (made,) = first.choices[0].message.tool_calls or []
    assert made.type == "function"
    assert (made.id, made.function.name, made.function.arguments) == (
        "call_1", "weather", '{"city": "Oslo"}'
    )  # fmt: skip
    assert server.requests[-1]["tools"] == tools
    assert server.requests[-1]["tool_choice"] == "auto"
    streamed = sdk.chat.completions.create(
        model="default",
        messages=asked,
        tools=tools,
        stream=True,
    )
    deltas = [d for c in streamed if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert [(d.index, d.id, d.function.name if d.function else None) for d in deltas] == [
        (0, "call_1", "weather")
    ]
    # The caller ran the tool; the result goes back with the history, as OpenAI's API has it.
    history: Any = [
        *asked,
        {"role": "assistant", "tool_calls": [made.model_dump()], "content": None},
        {"role": "tool", "tool_call_id": "call_1", "content": "rain all day"},
    ]
    final = sdk.chat.completions.create(model="default", messages=history, tools=tools)
    assert final.choices[0].message.content == "Rain."
    sent = server.requests[-1]["messages"]
    assert [m["role"] for m in sent][-3:] == ["user", "assistant", "tool"]
    assert sent[-1]["tool_call_id"] == "call_1"


@pytest.mark.postgres
def test_two_workers_share_one_postgresql(run: Runner, postgres_url: str) -> None:
    env = {**run.env, "CHINWAG_STORE__URL": postgres_url}
    with chinwag_serve(env, "--workers", "2") as (base, _):
        api = f"{base}/api/v1"
        cid = httpx.post(f"{api}/conversations", json={}).json()["id"]
        for i in range(12):  # a new connection each: the workers take turns accepting them
            reply = httpx.post(f"{api}/conversations/{cid}/messages", json={"prompt": f"q{i}"})
            assert reply.status_code == 200, reply.text
        history = httpx.get(f"{api}/conversations/{cid}/messages").json()
    assert [m["content"] for m in history[::2]] == [f"q{i}" for i in range(12)]
    assert [m["role"] for m in history] == ["user", "assistant"] * 12


def test_a_client_that_leaves_before_its_body_is_whole_leaves_no_traceback(run: Runner) -> None:
    import signal
    import socket

    with chinwag_serve(run.env) as (base, proc):
        port = int(base.rsplit(":", 1)[1])
        for path in ("/v1/chat/completions", "/api/v1/conversations"):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: "
                    'application/json\r\ncontent-length: 1000\r\n\r\n{"model"'.encode()
                )
        body = {"model": "default", "messages": [{"role": "user", "content": "still here?"}]}
        assert httpx.post(f"{base}/v1/chat/completions", json=body).status_code == 200
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert proc.stderr is not None
        log = proc.stderr.read()
    assert "Traceback" not in log
    assert "ClientDisconnect" not in log
