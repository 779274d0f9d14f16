"""chinwag.compat.lwe: LLM Workflow Engine's ApiBackend and Config, tested first by running
the examples of its seed document (000_...) with only their imports changed."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chinwag import Client
from chinwag.compat.lwe import ApiBackend, Config
from chinwag.errors import ConfigError, InputError, NotFoundError
from tests.conftest import Place, Served
from tests.fake_openai import FakeOpenAI, Script
from tests.seed_examples import Example, rewrite_imports, rst_examples, run, seed_text

DOCUMENT = "000_cb89f926b116ee56.txt"
IMPORTS = {"lwe": "chinwag.compat.lwe", "lwe.core.config": "chinwag.compat.lwe"}


def example(index: int) -> Example:
    examples = rst_examples(seed_text(DOCUMENT))
    assert len(examples) == 4  # ask, ask with a Config, ask_stream, a preset
    found = examples[index]
    return Example(rewrite_imports(found.code, IMPORTS), found.line)


@pytest.fixture
def namespace(place: Place) -> Iterator[dict[str, Any]]:
    """Where the examples run (in each place); every ApiBackend they made is closed after."""
    names: dict[str, Any] = {}
    yield names
    for value in names.values():
        if isinstance(value, ApiBackend):
            value.close()


@pytest.fixture
def backend(place: Place) -> Iterator[ApiBackend]:
    with ApiBackend() as made:
        yield made


def stored(conversation_id: str | None) -> list[tuple[str, str, str]]:
    """The conversation as chinwag stored it (in this process's store, or the server's):
    role, text and status of each message."""
    assert conversation_id is not None
    with Client() as client:
        return [
            (m.role, m.content, m.status) for m in client.conversations.history(conversation_id)
        ]


# -- the document's examples ----------------------------------------------------------------


def test_the_imports_are_all_that_changes() -> None:
    original = rst_examples(seed_text(DOCUMENT))
    for index, found in enumerate(original):
        changed = [
            (a, b)
            for a, b in zip(found.code.splitlines(), example(index).code.splitlines(), strict=True)
            if a != b
        ]
        assert changed, "every example imports lwe"
        assert all(a.startswith("from lwe") and "chinwag.compat.lwe" in b for a, b in changed)


def test_ask_prints_the_answer_and_stores_the_exchange(
    namespace: dict[str, Any], server: FakeOpenAI
) -> None:
    out = run(example(0), namespace, DOCUMENT)
    assert out.getvalue() == "You said: Say hello!\n"
    assert namespace["success"] is True
    assert stored(namespace["bot"].conversation_id) == [
        ("user", "Say hello!", "complete"),
        ("assistant", "You said: Say hello!", "complete"),
    ]


def test_a_config_with_the_debug_log_on_writes_the_log(
    namespace: dict[str, Any], home: Path
) -> None:
    out = run(example(1), namespace, DOCUMENT)
    assert out.getvalue() == "You said: Say hello!\n"
    assert namespace["config"].get("debug.log.enabled") is True
    log = (home / "lwe-debug.log").read_text()
    assert "Starting 'ask' request" in log
    assert "Answered: 20 characters" in log
    assert "Say hello" not in log  # what was said stays out of the log


def test_ask_stream_hands_each_chunk_to_the_callback(
    namespace: dict[str, Any], server: FakeOpenAI
) -> None:
    server.scripts.append(Script(chunks=["Blue, ", "round, ", "alive."]))
    out = run(example(2), namespace, DOCUMENT)
    assert out.writes == ["Blue, ", "round, ", "alive."]  # one print per chunk, as they came
    assert namespace["response"] == "Blue, round, alive."
    assert namespace["success"] is True
    assert server.requests[-1]["stream"] is True
    assert stored(namespace["bot"].conversation_id)[-1] == (
        "assistant",
        "Blue, round, alive.",
        "complete",
    )


def test_the_gpt_4_preset_asks_gpt_4_with_its_settings(
    namespace: dict[str, Any], server: FakeOpenAI
) -> None:
    run(example(3), namespace, DOCUMENT)
    assert namespace["success"] is True
    assert namespace["response"] == "You said: Hello, world!"
    sent = server.requests[-1]
    assert (sent["model"], sent["temperature"], sent["top_p"]) == ("gpt-4", 0.5, 0.5)
    with Client() as client:  # the preset is a chinwag bot now, the user's own
        bot = client.bots.get(slug="gpt-4-chatbot-responses")
    assert bot is not None
    assert bot.model == "gpt-4"


# -- failures are LWE's tuples --------------------------------------------------------------


def test_a_failing_provider_is_false_none_and_why(backend: ApiBackend, server: FakeOpenAI) -> None:
    server.scripts.append(Script(status=500, error="the model is down"))
    success, response, message = backend.ask("Hello?")
    assert (success, response) == (False, None)
    assert "500" in message
    assert "the model is down" in message
    # The question was stored before the model was called, and the failure with it.
    assert stored(backend.conversation_id)[0] == ("user", "Hello?", "complete")


def test_a_stream_cut_short_is_a_failure_and_keeps_the_partial_answer(
    backend: ApiBackend, server: FakeOpenAI
) -> None:
    server.scripts.append(Script(chunks=["One ", "two ", "three ", "four"], cut_after=2))
    seen: list[str] = []
    success, response, message = backend.ask_stream(
        "Count", request_overrides={"stream_callback": seen.append}
    )
    assert (success, response) == (False, None)
    assert message
    assert seen == ["One ", "two "]
    assert stored(backend.conversation_id)[-1][1:] == ("One two ", "partial")


@pytest.mark.parametrize(
    ("prompt", "overrides", "why"),
    [
        (42, None, "The prompt must be text"),
        ("", None, "The prompt is empty"),
        ("Hi", "fast", "request_overrides must be a dict"),
        (
            "Hi",
            {"strem_callback": print},
            "request_overrides: chinwag does not know ['strem_callback']",
        ),
        ("Hi", {"stream_callback": "print"}, "stream_callback must be a function"),
        ("Hi", {"preset": "no-such-preset"}, "no-such-preset"),
        ("Hi", {"preset_overrides": {"temperature": 9}}, "temperature"),
        ("Hi", {"preset_overrides": {"request_timeout": 5}}, "providers.<name>.timeout"),
        ("Hi", {"title": 7}, "title must be text"),
    ],
)
def test_bad_input_is_false_none_and_a_clear_message(
    backend: ApiBackend, server: FakeOpenAI, prompt: Any, overrides: Any, why: str
) -> None:
    assert backend.ask(prompt, overrides)[:2] == (False, None)
    assert why in backend.ask(prompt, overrides)[2]
    assert len(server.requests) == 0


# -- request_overrides -----------------------------------------------------------------------


def test_system_message_and_preset_overrides_reach_the_provider(
    backend: ApiBackend, server: FakeOpenAI
) -> None:
    overrides = {
        "system_message": "You answer in rhyme.",
        "preset_overrides": {"model_customizations": {"temperature": 0.1, "max_tokens": 20}},
    }
    assert backend.ask("Hi", overrides)[0] is True
    sent = server.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "You answer in rhyme."}
    assert (sent["temperature"], sent["max_tokens"]) == (0.1, 20)
    flat = {"model_name": "other-model", "model_kwargs": {"top_p": 0.3}}
    assert backend.ask("Again", {"preset_overrides": flat})[0] is True
    sent = server.requests[-1]
    assert (sent["model"], sent["top_p"]) == ("other-model", 0.3)
    assert sent["messages"][0]["content"] == "You are a helpful assistant."  # chinwag's default


def test_a_preset_for_one_request_or_activated_for_the_rest(
    backend: ApiBackend, server: FakeOpenAI
) -> None:
    with Client() as client:
        client.bots.create(name="Poet", system_prompt="Rhyme.", model="other-model")
    assert backend.ask("One", {"preset": "poet"})[0] is True
    assert server.requests[-1]["model"] == "other-model"
    assert backend.ask("Two")[0] is True
    assert server.requests[-1]["model"] == "test-model"  # only for that request
    assert backend.ask("Three", {"preset": "poet", "activate_preset": True})[0] is True
    assert backend.active_preset_name == "poet"
    assert backend.ask("Four")[0] is True
    assert server.requests[-1]["model"] == "other-model"
    assert server.requests[-1]["messages"][0]["content"] == "Rhyme."


def test_title_names_a_new_conversation(backend: ApiBackend) -> None:
    assert backend.ask("Hi", {"title": "Greetings"})[0] is True
    assert backend.conversation_title == "Greetings"
    with Client() as client:
        assert client.conversations.get(str(backend.conversation_id)).title == "Greetings"


# -- conversations ---------------------------------------------------------------------------


def test_conversations_go_on_switch_list_retitle_and_delete(
    backend: ApiBackend, server: FakeOpenAI
) -> None:
    backend.ask("First question")
    first = backend.conversation_id
    backend.ask("Second question")
    assert backend.conversation_id == first
    assert [m["content"] for m in server.requests[-1]["messages"][1:]] == [
        "First question", "You said: First question", "Second question",
    ]  # fmt: skip
    backend.new_conversation()
    backend.ask("Elsewhere")
    second = backend.conversation_id
    assert second != first

    success, history, _ = backend.get_history()
    assert success is True
    assert list(history) == [second, first]  # newest first, keyed by id, as LWE's
    assert history[first]["title"] == "First question"

    backend.switch_to_conversation(str(first))
    assert backend.conversation_title == "First question"
    backend.ask("Third question")
    assert server.requests[-1]["messages"][-2]["content"] == "You said: Second question"

    success, conversation, _ = backend.set_title("Renamed")
    assert (success, conversation["title"], backend.conversation_title) == (
        True, "Renamed", "Renamed",
    )  # fmt: skip
    success, data, _ = backend.get_conversation()
    assert success is True
    assert [m["message"] for m in data["messages"]][-1] == "You said: Third question"

    success, deleted, _ = backend.delete_conversation()
    assert (success, deleted["id"]) == (True, first)
    assert backend.conversation_id is None  # it was the current one
    with Client() as client, pytest.raises(NotFoundError):
        client.conversations.history(str(first))
    assert backend.delete_conversation(first)[:2] == (False, None)
    with pytest.raises(NotFoundError):
        backend.switch_to_conversation(str(first))
    assert backend.get_conversation()[:2] == (False, None)


def test_run_template_sends_the_filled_in_template(backend: ApiBackend, server: FakeOpenAI) -> None:
    success, response, _ = backend.run_template(
        "summarize", {"text": "Tea is a drink.", "sentences": 1}
    )
    assert success is True
    prompt = server.requests[-1]["messages"][-1]["content"]
    assert prompt.startswith("Summarize the following text in at most 1 sentences.")
    assert response == f"You said: {prompt}"
    assert backend.run_template("no-such-template")[:2] == (False, None)
    overrides = {"request_overrides": {"preset_overrides": {"temperature": 0.2}}}
    assert backend.run_template("summarize", {"text": "x"}, overrides)[0] is True
    assert server.requests[-1]["temperature"] == 0.2
    assert len(stored(backend.conversation_id)) == 4  # both in the current conversation


def test_set_model_and_set_provider(backend: ApiBackend, server: FakeOpenAI, place: Place) -> None:
    assert backend.set_model("other-model")[0] is True
    backend.ask("Hi")
    assert server.requests[-1]["model"] == "other-model"
    success, provider, _ = backend.set_provider("provider_chat_openai", {"temperature": 0.4})
    assert (success, provider) == (True, "openai")
    backend.ask("Hi")
    assert (server.requests[-1]["model"], server.requests[-1]["temperature"]) == ("test-model", 0.4)
    asked = len(server.requests)
    success, _, message = backend.set_provider("chat_nowhere")
    if place.remote:  # the server's providers are its own: it refuses at the next request
        assert success is True
        success, _, message = backend.ask("Hi")
    assert success is False
    assert "nowhere" in message
    assert "openai" in message  # the configured providers are named
    assert len(server.requests) == asked  # no model was asked
    assert backend.set_model(3)[:2] == (False, None)  # type: ignore[arg-type]


# -- terminate_stream -----------------------------------------------------------------------


def slow(server: FakeOpenAI) -> None:
    """An answer of 200 chunks, 50 ms apart: ten seconds, unless it is stopped."""
    server.scripts.append(Script(chunks=[f"w{n} " for n in range(200)], chunk_delay=0.05))


def provider_saw_it_stop(server: FakeOpenAI) -> bool:
    """Whether the provider saw the client leave mid-answer (it notices within a chunk)."""
    for _ in range(100):
        if server.disconnects:
            return True
        time.sleep(0.05)
    return False


def test_terminate_stream_from_the_callback_stops_it_and_keeps_the_partial_answer(
    backend: ApiBackend, server: FakeOpenAI
) -> None:
    slow(server)

    def callback(chunk: str) -> None:
        if chunk == "w2 ":
            backend.terminate_stream()

    success, response, message = backend.ask_stream(
        "Count", request_overrides={"stream_callback": callback}
    )
    assert (success, response) == (True, "w0 w1 w2 ")
    assert "terminated" in message
    assert backend.streaming is False
    role, content, status = stored(backend.conversation_id)[-1]
    assert (role, status) == ("assistant", "partial")
    assert content.startswith("w0 w1 w2 ")
    assert len(content.split()) < 200
    assert provider_saw_it_stop(server)
    assert backend.ask("Next")[0] is True  # the backend goes on


def test_terminate_stream_as_a_signal_handler_from_another_thread(
    backend: ApiBackend, server: FakeOpenAI
) -> None:
    slow(server)
    started = threading.Event()

    def stop_once_started() -> None:
        if started.wait(30):
            backend.terminate_stream(signal.SIGINT, None)  # as signal.signal would call it

    stopper = threading.Thread(target=stop_once_started)
    stopper.start()
    success, response, message = backend.ask_stream(
        "Count", {"stream_callback": lambda chunk: started.set()}
    )
    stopper.join(30)
    assert success is True
    assert "terminated" in message
    assert 0 < len(response.split()) < 200
    assert stored(backend.conversation_id)[-1][2] == "partial"
    assert provider_saw_it_stop(server)


def test_terminate_stream_with_nothing_streaming_does_nothing(backend: ApiBackend) -> None:
    backend.terminate_stream()
    assert backend.ask_stream("Hi") == (
        True,
        "You said: Hi",
        f"Response received in conversation {backend.conversation_id}",
    )


# -- Config ----------------------------------------------------------------------------------


def test_config_keeps_lwe_keys_and_passes_chinwag_keys_through(server: FakeOpenAI) -> None:
    config = Config()
    assert config.get("model.default_preset") is None
    assert config.get("debug.log.enabled") is False
    config.set("providers.openai.base_url", server.base_url)
    assert config.get("providers.openai.base_url") == server.base_url
    assert config.chinwag.get("providers.openai.base_url") == server.base_url
    assert config.get("no.such.key", "fallback") == "fallback"
    with pytest.raises(ConfigError, match="neither one of LWE's"):
        config.get("no.such.key")
    with pytest.raises(ConfigError, match="True or False"):
        config.set("debug.log.enabled", "yes")
    with pytest.raises(ConfigError, match="logging level"):
        config.set("debug.log.level", "loud")
    with pytest.raises(ConfigError, match=r"providers\.openai\.timeout"):
        config.set("providers.openai.timeout", -1)
    with pytest.raises(InputError, match="ApiBackend takes"):
        ApiBackend({"model.default_preset": "x"})  # type: ignore[arg-type]


def test_config_dirs_and_default_conversation(tmp_path: Path, library_env: FakeOpenAI) -> None:
    data = tmp_path / "lwe-data"
    with ApiBackend(Config(data_dir=data)) as first:
        assert first.ask("Remember me")[0] is True
    assert (data / "chinwag.db").is_file()
    config = Config(data_dir=data)
    config.set("backend_options.default_conversation_id", first.conversation_id)
    config.set("backend_options.default_user", "alice")
    with ApiBackend(config) as again:
        assert again.conversation_id == first.conversation_id
        assert again.get_history()[1] == {}  # alice has no conversations of her own
        assert again.get_history(user_id="local")[1].keys() == {first.conversation_id}


# -- against a chinwag server: what only a server has -------------------------------------------


def remote_backend(served: Served, key: str, **settings: Any) -> ApiBackend:
    """An ApiBackend on the server, set up the LWE way: chinwag's keys in LWE's Config."""
    config = Config()
    config.set("server.url", served.url)
    config.set("server.api_key", key)
    for name, value in settings.items():
        config.set(name, value)
    return ApiBackend(config)


def test_against_a_server_the_turns_are_in_its_store(
    served: Served, library_env: FakeOpenAI
) -> None:
    user, key = served.new_user()
    with remote_backend(served, key) as backend:
        assert backend.ask("Say hello!")[:2] == (True, "You said: Say hello!")
        assert backend.ask_stream("Once more")[:2] == (True, "You said: Once more")
    assert served.stored(user, backend.conversation_id) == [
        ("user", "Say hello!", "complete"), ("assistant", "You said: Say hello!", "complete"),
        ("user", "Once more", "complete"), ("assistant", "You said: Once more", "complete"),
    ]  # fmt: skip
    with Client() as here:  # this process's own store has none of it
        assert here.server is None
        assert here.conversations.list() == []


def test_a_wrong_key_is_false_none_and_why(served: Served, library_env: FakeOpenAI) -> None:
    with remote_backend(served, "cw-not-a-key") as backend:
        success, response, message = backend.ask("Hello?")
    assert (success, response) == (False, None)
    assert "The API key is not valid" in message
    assert library_env.requests == []


def test_two_keys_users_see_only_their_own(served: Served, library_env: FakeOpenAI) -> None:
    alice, alice_key = served.new_user()
    _, bob_key = served.new_user()
    with remote_backend(served, alice_key) as backend:
        backend.ask("Alice's secret")
        secret = str(backend.conversation_id)
    with remote_backend(served, bob_key) as bob:
        assert bob.get_history()[:2] == (True, {})
        with pytest.raises(NotFoundError):  # as a missing id: nothing says it exists
            bob.switch_to_conversation(secret)
        for refused in (
            bob.get_conversation(secret), bob.set_title("Bob's now", secret),
            bob.delete_conversation(secret),
        ):  # fmt: skip
            assert refused[:2] == (False, None)
            assert "secret" not in refused[2]
        success, _, message = bob.get_history(user_id=alice)
        assert success is False
        assert "another user" in message  # a key acts as its own user only
    # LWE's default user naming another user is refused, not filed under either of them.
    with remote_backend(served, bob_key, **{"backend_options.default_user": alice}) as posing:
        success, _, message = posing.ask("As Alice")
    assert success is False
    assert "another user" in message
    assert [m[1] for m in served.stored(alice, secret)] == [
        "Alice's secret",
        "You said: Alice's secret",
    ]
    with Client(base_url=served.url, api_key=bob_key) as as_bob:
        assert as_bob.conversations.list() == []
