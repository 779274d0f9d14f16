"""One client, two places: every scenario runs against the engine in-process and against
a real `chinwag serve` on 127.0.0.1 (the same Client, given base_url), with the same
assertions. This is the suite that keeps the two from drifting."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

import chinwag
from chinwag import Client
from chinwag.types import Done, TextDelta, UsageEvent
from tests.conftest import GIF, PNG, Runner, chinwag_env, make_config
from tests.fake_openai import FakeOpenAI, Script
from tests.server import chinwag_serve

Make = Callable[..., Client]


@pytest.fixture(scope="module")
def module_server(
    _fake_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One server for the module (starting one per test would dominate the run); each test
    makes its own bots and conversations and reads only those."""
    env = chinwag_env(tmp_path_factory.mktemp("served"), _fake_server)
    with chinwag_serve(env) as (base, _):
        yield base


@pytest.fixture(params=["in-process", "server"])
def place(request: pytest.FixtureRequest, server: FakeOpenAI) -> str:
    return str(request.param)


@pytest.fixture
def make(place: str, request: pytest.FixtureRequest, server: FakeOpenAI) -> Iterator[Make]:
    """Clients for this place: the engine in this process, or the test's server."""
    made: list[Client] = []

    def new(**kwargs: Any) -> Client:
        if place == "in-process":
            client = Client(make_config(server, **{"providers.openai.max_retries": 0}))
        else:
            base: str = request.getfixturevalue("module_server")
            client = Client(base_url=base, **kwargs)
        made.append(client)
        return client

    yield new
    for client in made:
        client.close()


@pytest.fixture
def client(make: Make) -> Client:
    return make()


def _bot(client: Client, **fields: Any) -> chinwag.Bot:
    """A bot of this test's own (the server is shared by the module's tests)."""
    import uuid

    name = f"Poet {uuid.uuid4().hex[:8]}"
    return client.bots.create(name=name, system_prompt="Rhyme.", **fields)


def test_ask_goes_on_with_a_conversation_and_sends_its_history(
    client: Client, server: FakeOpenAI
) -> None:
    first = client.ask("Hello there")
    assert first.text == "You said: Hello there"
    assert first.usage.prompt_tokens > 0
    assert first.usage.completion_tokens > 0
    second = client.ask("And again", conversation=first.conversation_id)
    assert second.conversation_id == first.conversation_id
    sent = [m["content"] for m in server.requests[-1]["messages"]]
    assert sent[-3:] == ["Hello there", "You said: Hello there", "And again"]
    history = client.conversations.history(first.conversation_id)
    assert [(m.role, m.content) for m in history] == [
        ("user", "Hello there"), ("assistant", "You said: Hello there"),
        ("user", "And again"), ("assistant", "You said: And again"),
    ]  # fmt: skip
    assert all(m.status == "complete" for m in history)


def test_a_stream_yields_the_same_typed_events(client: Client, server: FakeOpenAI) -> None:
    server.scripts.append(Script(chunks=["Once ", "upon ", "a time"]))
    stream = client.stream("A story")
    events = list(stream.events())
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert texts == ["Once ", "upon ", "a time"]
    assert isinstance(events[-1], Done)
    assert any(isinstance(e, UsageEvent) for e in events)
    assert stream.reply.text == "Once upon a time"
    history = client.conversations.history(stream.reply.conversation_id)
    assert history[-1].content == "Once upon a time"


def test_leaving_a_stream_keeps_what_was_said_as_partial(
    client: Client, server: FakeOpenAI
) -> None:
    chunks = [f"word{i} " for i in range(200)]
    server.scripts.append(Script(chunks=chunks, chunk_delay=0.01))
    conversation = client.conversations.create()
    stream = client.stream("Talk a lot", conversation=conversation.id)
    seen = ""
    for text in stream:
        seen += text
        if len(seen) > 30:
            break
    stream.close()
    answer = None
    for _ in range(100):  # a server stores it once it sees the client go: bounded wait
        answer = client.conversations.history(conversation.id)[-1]
        if answer.status == "partial":
            break
        time.sleep(0.05)
    assert answer is not None
    assert answer.status == "partial"
    assert answer.content.startswith(seen)
    assert len(answer.content) < len("".join(chunks))


def test_chat_from_messages_sends_the_system_prompt(client: Client, server: FakeOpenAI) -> None:
    reply = client.chat(
        messages=[
            {"role": "system", "content": "You are a bibliophile."},
            {"role": "user", "content": "I like pizza"},
            {"role": "assistant", "content": "Me too!"},
            {"role": "user", "content": "What do I like?"},
        ]
    )
    assert reply.text == "You said: What do I like?"
    sent = server.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "You are a bibliophile."}
    assert [m["content"] for m in sent[1:]] == ["I like pizza", "Me too!", "What do I like?"]
    streamed = client.chat(messages=[{"role": "user", "content": "Stream it"}], stream=True)
    assert "".join(streamed) == "You said: Stream it"


def test_conversations_list_rename_retry_edit_export_and_delete(
    client: Client, server: FakeOpenAI
) -> None:
    bot = _bot(client)
    made = client.conversations.create(bot=bot.slug, system="Be brief.", title="Tea")
    assert (made.title, made.bot, made.system_prompt) == ("Tea", bot.uid, "Be brief.")
    first = client.ask("A haiku about tea", conversation=made.id)
    assert server.requests[-1]["messages"][0]["content"] == "Be brief."
    assert client.conversations.list(limit=1)[0].id == made.id  # newest activity first
    assert [c.id for c in client.conversations.list(query="HAIKU ABOUT")] == [made.id]
    assert client.conversations.rename(made.id, "Tea time").title == "Tea time"
    assert client.conversations.get(made.id).title == "Tea time"
    assert client.conversations.set_system(made.id, "Be long.").system_prompt == "Be long."

    retried = client.conversations.retry(made.id)
    assert retried.conversation_id == made.id
    assert retried.message_id != first.message_id
    question = client.conversations.history(made.id)[0]
    edited = client.conversations.edit(question.id, "A haiku about coffee")
    assert edited.text == "You said: A haiku about coffee"
    assert next(m.content for m in client.conversations.history(made.id)) == "A haiku about coffee"

    assert first.message_id is not None
    back = client.conversations.switch_branch(made.id, first.message_id)
    assert [m.content for m in back] == ["A haiku about tea", "You said: A haiku about tea"]
    assert back[-1].id == first.message_id
    streamed = client.conversations.retry(made.id, stream=True)
    assert "".join(streamed) == "You said: A haiku about tea"
    assert client.conversations.history(made.id)[-1].id == streamed.reply.message_id

    exported = client.conversations.export(made.id)
    assert len(json.loads(exported)["messages"]) == 6  # two questions, four answers
    markdown = client.conversations.export(made.id, format="markdown")
    assert markdown.startswith("# Tea time")
    assert "A haiku about tea" in markdown  # the branch switched back to
    client.conversations.delete(made.id)
    with pytest.raises(chinwag.NotFoundError):
        client.conversations.get(made.id)
    restored = client.conversations.import_json(exported)
    assert restored.id == made.id
    assert client.conversations.export(made.id) == exported  # exactly as it was


def test_files_go_with_the_question_and_come_back(
    client: Client, server: FakeOpenAI, tmp_path: Path
) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Tea at five.\n")
    reply = client.ask("Read", files=[note, ("cat.png", PNG)])
    content = server.requests[-1]["messages"][-1]["content"]
    assert content == [
        {"type": "text", "text": "File: note.txt\n```\nTea at five.\n```\n\nRead"},
        {"type": "image_url", "image_url": {"url": _data_url(PNG, "image/png")}},
    ]
    question = client.conversations.history(reply.conversation_id)[0]
    assert [(f.name, f.media_type, f.size) for f in question.attachments] == [
        ("note.txt", "text/plain", 13), ("cat.png", "image/png", len(PNG)),
    ]  # fmt: skip
    assert client.conversations.attachment(question.attachments[1].sha256) == PNG
    stream = client.stream("And this?", conversation=reply.conversation_id, files=[GIF])
    assert "".join(stream) == "You said: And this?"
    sent = server.requests[-1]["messages"]
    assert sent[1]["content"] == content  # the earlier turn, its files with it
    assert sent[-1]["content"][1]["image_url"]["url"] == _data_url(GIF, "image/gif")
    later = client.conversations.history(reply.conversation_id)[2]
    assert [f.name for f in later.attachments] == ["attachment-1.gif"]
    exported = client.conversations.export(reply.conversation_id)
    assert "*Attached: note.txt (text/plain, 13 bytes), cat.png (image/png" in (
        client.conversations.export(reply.conversation_id, format="markdown")
    )
    client.conversations.delete(reply.conversation_id)
    restored = client.conversations.import_json(exported)
    assert client.conversations.history(restored.id)[0].attachments == question.attachments
    assert client.conversations.export(restored.id) == exported  # its files too


def test_files_are_checked_before_anything_is_sent(
    client: Client, server: FakeOpenAI, tmp_path: Path
) -> None:
    conversation = client.conversations.create()
    client.config.set("attachments.max_bytes", 100)
    for files, message in [
        ([tmp_path / "missing.txt"], f"No file {tmp_path}/missing.txt"),
        ([tmp_path], "is a folder"),
        ([b"x" * 101], r"attachments\.max_bytes"),
        ([("empty.txt", b"")], "empty.txt is empty"),
        ([("x.bin", b"\x00\x01")], "binary data of an unknown type"),
        ("note.txt", "files must be a list"),
    ]:
        with pytest.raises(chinwag.InputError, match=message):
            client.ask("Look", files=files, conversation=conversation.id)  # type: ignore[call-overload]
    with pytest.raises(chinwag.InputError, match="retry answers the stored question again"):
        client.conversations.retry(conversation.id, files=[b"text"])
    with pytest.raises(chinwag.NotFoundError):
        client.conversations.attachment(hashlib.sha256(b"never attached").hexdigest())
    assert server.requests == []
    assert client.conversations.history(conversation.id) == []


def _data_url(data: bytes, kind: str) -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def test_bots_by_uid_slug_and_name(client: Client) -> None:
    bot = _bot(client, description="Writes verse")
    assert client.bots.get(slug=bot.slug) == bot
    assert client.bots.get(uid=bot.uid) == bot
    assert client.bots.get(name=bot.name) == bot
    assert client.bots.get(slug="no-such-bot") is None
    assert client.bots.find(bot.name) == bot
    assert client.bots.find().slug == "default"
    assert bot.slug in {b.slug for b in client.bots.list()}
    assert client.bots.update(bot.slug, description="Rhymes").description == "Rhymes"
    assert f"slug: {bot.slug}" in client.bots.export(bot.slug)
    with pytest.raises(chinwag.ConflictError):
        client.bots.create(name=bot.name)
    client.ask("Hello, bot!", bot=bot.slug)
    client.bots.delete(bot.slug)
    assert client.bots.get(slug=bot.slug) is None


def test_a_turn_s_model_and_provider_keep_its_bot_s_prompt_and_conversation(
    client: Client, server: FakeOpenAI
) -> None:
    bot = _bot(client, model="other-model", params={"temperature": 0.3})
    reply = client.ask("Hi", bot=bot.slug, model="third-model")
    sent = server.requests[-1]
    assert (sent["model"], sent["temperature"]) == ("third-model", 0.3)
    assert sent["messages"][0]["content"] == "Rhyme."
    assert client.conversations.get(reply.conversation_id).bot == bot.uid  # still the bot's
    assert client.conversations.history(reply.conversation_id)[-1].model == "third-model"
    client.ask("Again", conversation=reply.conversation_id, provider="openai")
    assert server.requests[-1]["model"] == "test-model"  # that provider's model, not the bot's
    client.ask("Back", conversation=reply.conversation_id)
    assert server.requests[-1]["model"] == "other-model"  # the override was those turns' only
    asked = len(server.requests)
    with pytest.raises(chinwag.NotFoundError, match="No provider 'nowhere'; the configured"):
        client.ask("Hi", provider="nowhere")
    with pytest.raises(chinwag.InputError, match="model is empty"):
        client.ask("Hi", model=" ")
    assert len(server.requests) == asked


def test_per_model_system_prompts_come_below_the_bot_s(client: Client, server: FakeOpenAI) -> None:
    client.set_system_prompt("test-model", "You are a pirate.")
    client.ask("hi")
    assert server.requests[-1]["messages"][0]["content"] == "You are a pirate."
    client.ask("hi", bot=_bot(client).slug)  # the bot's own prompt comes first
    assert server.requests[-1]["messages"][0]["content"] == "Rhyme."
    client.ask("hi", system="The call's.")
    assert server.requests[-1]["messages"][0]["content"] == "The call's."
    client.set_system_prompts({"test-model": None, "other-model": "Unused here."})
    client.ask("hi")
    assert server.requests[-1]["messages"][0]["content"] == "You are a helpful assistant."
    with pytest.raises(chinwag.InputError, match="model"):
        client.set_system_prompt("", "Nothing to name.")


def test_statistics_grow_with_each_turn(client: Client) -> None:
    before = client.stats.total()
    day_before = client.stats.day()
    client.ask("Count me", max_words=20, language="French")
    after = client.stats.total()
    assert after.requests == before.requests + 1
    assert after.completion_words > before.completion_words
    assert client.stats.day().requests == day_before.requests + 1
    usage = client.stats.usage()
    assert usage.total == after
    assert len(usage.items) == 1


def test_costs_on_replies_and_in_stats(client: Client) -> None:
    before = client.stats.total()
    priced = client.ask("What does this cost?", model="gpt-4o-mini")
    assert priced.usage.cost is not None
    assert priced.usage.cost > 0
    unknown = client.ask("And this?")
    assert unknown.usage.cost is None  # test-model has no known price
    after = client.stats.total()
    assert after.unpriced == before.unpriced + 1
    assert after.cost == pytest.approx((before.cost or 0.0) + priced.usage.cost)
    assert client.stats.day().cost == client.stats.usage().items[-1].cost
    # Each conversation says what it cost: the priced part, and the answers without a price.
    client.ask("Once more", conversation=priced.conversation_id)
    found = client.conversations.get(priced.conversation_id)
    assert found.cost == pytest.approx(priced.usage.cost)
    assert found.unpriced == 1
    listed = {c.id: c for c in client.conversations.list()}
    assert listed[unknown.conversation_id].cost is None
    # Usage of one model: its own requests and cost only.
    mine = client.stats.usage(model="gpt-4o-mini").total
    assert mine.unpriced == 0
    assert mine.cost is not None
    assert mine.cost >= priced.usage.cost
    assert client.stats.usage(model="no-such-model").total.requests == 0


def test_errors_are_the_same_classes(client: Client, server: FakeOpenAI) -> None:
    with pytest.raises(chinwag.NotFoundError):
        client.ask("hi", bot="no-such-bot")
    with pytest.raises(chinwag.NotFoundError):
        client.conversations.history("no-such-conversation")
    with pytest.raises(chinwag.InputError, match="temperature"):
        client.ask("hi", temperature="hot")  # type: ignore[call-overload]
    with pytest.raises(chinwag.InputError):
        client.ask("   ")
    server.scripts.append(Script(status=429, headers={"retry-after": "7"}, error="slow down"))
    with pytest.raises(chinwag.RateLimitError) as limited:
        client.ask("hi")
    assert limited.value.retry_after == 7
    assert limited.value.partial is not None
    assert limited.value.partial.status == "error"
    server.scripts.append(Script(chunks=["Half ", "an ", "answer"], cut_after=2))
    stream = client.stream("hi")
    with pytest.raises(chinwag.ProviderConnectionError) as cut:
        for _ in stream:
            pass
    assert cut.value.partial is not None
    assert cut.value.partial.text == "Half an "
    assert cut.value.partial.status == "partial"


def test_health_says_where_the_client_runs(client: Client, place: str) -> None:
    report = client.health()
    assert report.ok
    assert (report.server is None) == (place == "in-process") == (client.server is None)


def test_calls_that_return_futures(client: Client) -> None:
    future = client.ask("Later", wait=False)
    assert isinstance(future, Future)
    reply = future.result(timeout=30)
    history = client.conversations.history(reply.conversation_id, wait=False)
    assert [m.content for m in history.result(timeout=30)][-1] == "You said: Later"
    client.conversations.delete(reply.conversation_id, wait=False).result(timeout=30)
    with pytest.raises(chinwag.NotFoundError):
        client.conversations.get(reply.conversation_id)


@pytest.mark.anyio
async def test_the_async_client_in_both_places(
    place: str, make: Make, request: pytest.FixtureRequest, server: FakeOpenAI
) -> None:
    if place == "in-process":
        aclient = chinwag.AsyncClient(make_config(server))
    else:
        aclient = chinwag.AsyncClient(base_url=request.getfixturevalue("module_server"))
    async with aclient:
        reply = await aclient.ask("Async hello")
        assert reply.text == "You said: Async hello"
        stream = aclient.stream("Async stream", conversation=reply.conversation_id)
        assert "".join([t async for t in stream]) == "You said: Async stream"
        history = await aclient.conversations.history(reply.conversation_id)
        assert len(history) == 4


# -- only a remote client has these ---------------------------------------------------------


def test_the_environment_points_the_readme_s_code_at_a_server(
    run: Runner, server: FakeOpenAI
) -> None:
    """The README's library example, unchanged, with CHINWAG_URL and CHINWAG_API_KEY set."""
    assert run("users", "add", "alice").returncode == 0
    made = run("keys", "create", "--user", "alice")
    key = made.stdout.split()[-1] if made.stdout.strip() else ""
    assert key.startswith("cw-"), made.stdout + made.stderr
    with chinwag_serve(run.env) as (base, _):
        code = (
            "import chinwag\n"
            "with chinwag.Client() as client:\n"
            "    reply = client.ask('Say hello!')\n"
            "    print(reply.text, client.server)\n"
            "    print(client.conversations.list()[0].id == reply.conversation_id)\n"
            "    print(reply.conversation_id)\n"
        )
        env = {**run.env, "CHINWAG_URL": base, "CHINWAG_API_KEY": key,
               "CHINWAG_HOME": str(run.env["CHINWAG_HOME"]) + "-elsewhere"}  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        said, listed_first, cid = done.stdout.splitlines()
        assert (said, listed_first) == (f"You said: Say hello! {base}", "True")
        # The turn is the server's, filed under alice: the server's own store has it.
        shown = run("conversations", "show", cid, "--user", "alice")
        assert "Say hello!" in shown.stdout


def test_a_remote_client_s_key_is_its_user(run: Runner, server: FakeOpenAI) -> None:
    for name in ("alice", "bob"):
        assert run("users", "add", name).returncode == 0
    keys = {
        name: run("keys", "create", "--user", name).stdout.split()[-1] for name in ("alice", "bob")
    }
    with chinwag_serve(run.env) as (base, _):
        with Client(base_url=base, api_key=keys["alice"]) as alice:
            mine = alice.ask("Alice's secret")
            with pytest.raises(chinwag.PermissionDeniedError, match="alice"):
                alice.ask("as bob", user="bob")
            assert alice.conversations.list(user="alice")[0].id == mine.conversation_id
        with Client(base_url=base, api_key=keys["bob"]) as bob:
            with pytest.raises(chinwag.NotFoundError):
                bob.conversations.history(mine.conversation_id)
            assert bob.conversations.list() == []
        with Client(base_url=base) as nobody, pytest.raises(chinwag.AccessError):
            nobody.ask("hi")
        with Client(base_url=base, api_key="cw-wrong") as wrong, pytest.raises(chinwag.AccessError):
            wrong.conversations.list()


def test_a_spent_key_limit_is_a_limit_error_with_its_wait(run: Runner, server: FakeOpenAI) -> None:
    assert run("users", "add", "carol").returncode == 0
    key = run("keys", "create", "--user", "carol", "--rpm", "1").stdout.split()[-1]
    with chinwag_serve(run.env) as (base, _), Client(base_url=base, api_key=key) as carol:
        carol.ask("one")
        with pytest.raises(chinwag.LimitError) as limited:
            carol.ask("two")
        assert limited.value.retry_after is not None
        assert 0 < limited.value.retry_after <= 60


def test_an_unreachable_server_is_a_connection_error_naming_it() -> None:
    from tests.server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with Client(base_url=url, config={"server.max_retries": 0}) as client:
        with pytest.raises(chinwag.ServerConnectionError, match=url.replace(".", r"\.")):
            client.ask("hi")
        assert client.health().ok is False
    with pytest.raises(chinwag.ConfigError, match=r"server\.url"):
        Client(base_url="ftp://example")
    with pytest.raises(chinwag.ConfigError, match=r"server\.api_key"):
        Client(base_url=url, api_key="cw-half\nof-a-key")
    with pytest.raises(chinwag.InputError, match="api_key"):
        Client(base_url=url, api_key=42)  # type: ignore[arg-type]


def test_the_command_talks_to_a_server(run: Runner, server: FakeOpenAI) -> None:
    with chinwag_serve(run.env) as (base, _):
        elsewhere = {**run.env, "CHINWAG_HOME": str(run.env["CHINWAG_HOME"]) + "-cli"}
        remote = Runner(elsewhere)
        asked = remote("--server", base, "Hello from afar")
        assert asked.returncode == 0, asked.stderr
        assert asked.stdout.strip() == "You said: Hello from afar"
        health = remote("--server", base, "health")
        assert f"talking to: {base}" in health.stdout
        env_remote = Runner({**elsewhere, "CHINWAG_URL": base})
        again = env_remote("-c", "And more")
        assert again.stdout.strip() == "You said: And more"
        cid = env_remote("conversations", "list").stdout.split()[0]
        # The server's store has both turns in one conversation; the client's has none.
        shown = run("conversations", "show", cid).stdout
        assert "Hello from afar" in shown
        assert "And more" in shown
        assert remote("conversations", "list").stdout.strip() == ""


def test_the_command_finds_a_server_s_key_in_the_keyring_or_its_file(
    run: Runner, server: FakeOpenAI, tmp_path: Path
) -> None:
    assert run("users", "add", "dave").returncode == 0
    key = run("keys", "create", "--user", "dave").stdout.split()[-1]
    env = {
        **run.env,
        "CHINWAG_HOME": str(tmp_path / "client-home"),
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(tmp_path / "keyring-data"),
    }
    remote = Runner(env)
    with chinwag_serve(run.env) as (base, _):
        refused = remote("--server", base, "hi")
        assert refused.returncode == 1
        assert "key" in refused.stderr.lower()
        store = f"import keyring; keyring.set_password('chinwag', {base!r}, {key!r})"
        subprocess.run([sys.executable, "-c", store], env=env, check=True, timeout=60)
        asked = remote("--server", base, "hi")
        assert asked.returncode == 0, asked.stderr
        assert asked.stdout.strip() == "You said: hi"
        assert key not in asked.stdout + asked.stderr
        # `chinwag keys set --server URL` stores it the same way (here: the 0600 file).
        other = Runner({**run.env, "CHINWAG_HOME": str(tmp_path / "other-home")})
        assert other("keys", "set", "--server", base, stdin=key).returncode == 0
        assert other("--server", base, "hi").stdout.strip() == "You said: hi"


def test_the_chat_shell_over_a_server(module_server: str, server: FakeOpenAI) -> None:
    from tests.test_shell import run_shell

    server.script(Script(text="hello back"), Script(text="Another answer"))
    with Client(base_url=module_server) as client:
        out = run_shell(client, "hello", "/retry", "/rename Greeting", "/history")
        assert "hello back" in out
        assert "Another answer" in out
        assert "user: hello\nassistant: Another answer" in out  # the new branch
        assert client.conversations.list(limit=1)[0].title == "Greeting"
