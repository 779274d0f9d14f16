"""chinwag.compat.hugchat: hugchat_api's HuggingChat, Bot and Message, tested first by running
the example of its seed document (004_...) with only its imports and placeholders changed,
then each method the document lists, with the signature the document gives it."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from chinwag import Client
from chinwag.compat.hugchat import HuggingChat, ListBots, Message, RequestData
from chinwag.compat.hugchat.core import Bot
from chinwag.errors import AccessError, InputError, NotFoundError, ProviderError
from tests.conftest import Place, Served
from tests.fake_openai import FakeOpenAI, Script
from tests.seed_examples import (
    Example,
    rewrite_imports,
    run,
    seed_text,
    signatures,
    text_examples,
)

DOCUMENT = "004_d3330f3d2fdd80c6.txt"
IMPORTS = {
    "hugchat_api": "chinwag.compat.hugchat",
    "hugchat_api.core": "chinwag.compat.hugchat.core",
}
# The document's placeholders, and the names they become.
PLACEHOLDERS = {"<email>": "EMAIL", "<cookies>": "COOKIES", "<model?>": "MODEL"}


def document() -> str:
    text = seed_text(DOCUMENT)
    for placeholder, name in PLACEHOLDERS.items():
        assert text.count(placeholder) == 1, placeholder
        text = text.replace(placeholder, name)
    return text


def the_example() -> Example:
    found = text_examples(document())
    assert len(found) == 1  # the page's one runnable example: imports, then getBot
    return Example(rewrite_imports(found[0].code, IMPORTS), found[0].line)


def documented() -> dict[str, ast.FunctionDef]:
    found = {node.name: node for node in signatures(document())}
    assert list(found) == [
        "fetchConversations", "chat", "setSystemPrompt", "setSystemPrompts", "updateTitle",
        "createConversation", "removeConversation", "getHistoriesByID",
    ]  # fmt: skip
    return found


@pytest.fixture
def hug(place: Place) -> Iterator[HuggingChat]:
    with HuggingChat() as made:
        yield made


@pytest.fixture
def bot(hug: HuggingChat) -> Bot:
    return hug.getBot("user@example.com", {"hf-chat": "placeholder"}, "test-model")


def done(result: Message | Future[Message]) -> Message:
    assert isinstance(result, Message)
    return result


# -- the document ----------------------------------------------------------------------------


def test_the_example_gets_a_bot(place: Place) -> None:
    example = the_example()
    original = text_examples(document())[0]
    changed = [
        (a, b) for a, b in zip(original.code.splitlines(), example.code.splitlines(), strict=True)
        if a != b
    ]  # fmt: skip
    assert [a for a, _ in changed] == [
        "from hugchat_api import HuggingChat",
        "from hugchat_api.core import HuggingChat",
    ]
    with Client() as client:  # a conversation from before: the Bot fetches it when made
        earlier = client.ask("Earlier question")
    # In-process the login is ignored; a server's key is the login, in the cookies.
    cookies = {"hf-chat": "placeholder"} if place.key is None else {"api_key": place.key}
    names: dict[str, Any] = {
        "EMAIL": "user@example.com", "COOKIES": cookies, "MODEL": "test-model",
    }  # fmt: skip
    run(example, names, DOCUMENT)
    try:
        made = names["bot"]
        assert isinstance(made, Bot)
        assert made.model == "test-model"
        assert made.conversations == {earlier.conversation_id: "Earlier question"}
        assert made.current_conversation is None
    finally:
        names["HUG"].close()


def test_each_documented_signature_is_the_bots(bot: Bot) -> None:
    for name, node in documented().items():
        ours = list(inspect.signature(getattr(Bot, name)).parameters.values())
        theirs = node.args.args
        given = [ast.literal_eval(d) for d in node.args.defaults]
        defaults = [inspect.Parameter.empty] * (len(theirs) - len(given)) + given
        assert [p.name for p in ours[: len(theirs)]] == [a.arg for a in theirs], name
        assert [p.default for p in ours[: len(theirs)]] == defaults, name
        # Anything more (chat's wait=) comes after, with a default: the old calls still work.
        assert all(p.default is not inspect.Parameter.empty for p in ours[len(theirs) :]), name
    # The properties the document names.
    assert isinstance(bot.conversations, dict)
    assert bot.current_conversation is None
    assert ListBots.OPENASSISTENT_30B_XOR == "OpenAssistant/oasst-sft-6-llama-30b-xor"


# -- each documented method --------------------------------------------------------------------


def test_fetch_conversations_reads_ids_and_titles(bot: Bot) -> None:
    assert bot.conversations == {}
    with Client() as client:
        first = client.ask("Tea or coffee?").conversation_id
    assert bot.fetchConversations() is None
    assert bot.conversations == {first: "Tea or coffee?"}
    with Client() as client:
        second = client.ask("Rain tomorrow?").conversation_id
    future = bot.fetchConversations(wait=False)
    assert isinstance(future, Future)
    assert future.result(timeout=30) is None
    assert bot.conversations == {first: "Tea or coffee?", second: "Rain tomorrow?"}


def test_chat_returns_the_message_with_its_streamed_chunks(bot: Bot, server: FakeOpenAI) -> None:
    server.scripts.append(Script(chunks=["The sky ", "is ", "blue."]))
    message = done(bot.chat("What colour is the sky?"))
    assert message.isDone() is True
    assert message.getText() == ["The sky ", "is ", "blue."]
    assert message.getFinalText() == "The sky is blue."
    assert message.getWebSearchSteps() == []
    assert message.getConversation() == bot.current_conversation  # a new one, made current
    assert bot.conversations == {bot.current_conversation: "What colour is the sky?"}
    again = done(bot.chat("And at night?"))
    assert again.getConversation() == message.getConversation()
    assert [m["content"] for m in server.requests[-1]["messages"][1:]] == [
        "What colour is the sky?", "The sky is blue.", "And at night?",
    ]  # fmt: skip


def test_chat_with_wait_false_is_a_future_of_the_message(bot: Bot) -> None:
    future = bot.chat("Later, please", wait=False)
    assert isinstance(future, Future)
    message = future.result(timeout=30)
    assert isinstance(message, Message)
    assert message.getFinalText() == "You said: Later, please"
    others = [bot.chat(f"Question {n}", conversation_id=message.conversation_id, wait=False)
              for n in range(3)]  # fmt: skip
    answers = {done_future.result(timeout=30).getFinalText() for done_future in others}
    assert answers == {f"You said: Question {n}" for n in range(3)}
    assert isinstance(message.conversation_id, str)
    assert len(bot.getHistoriesByID(message.conversation_id)) == 8


def test_chat_searches_the_web_and_shows_the_steps(
    bot: Bot, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, hug: HuggingChat
) -> None:
    server.search_results = [
        {"title": "Sky", "url": "https://example.invalid/sky", "content": "It is blue."}
    ]
    monkeypatch.setenv("CHINWAG_SEARCH__URL", server.base_url.removesuffix("/v1"))
    monkeypatch.setenv("CHINWAG_SEARCH__ALLOW_PRIVATE", "true")  # the test server is loopback
    with HuggingChat() as searching:
        message = done(searching.getBot(model="test-model").chat("Sky colour?", web_search=True))
    assert server.searches == ["Sky colour?"]
    steps = message.getWebSearchSteps()
    assert [s["type"] for s in steps] == ["searching", "results"]
    assert steps[1]["sources"][0]["url"] == "https://example.invalid/sky"
    assert message.getWebSearchStep() == steps[0]
    assert message.getWebSearchStep() == steps[1]
    assert message.getWebSearchStep() is None
    assert "It is blue." in server.requests[-1]["messages"][0]["content"]


def test_a_failed_chat_raises_from_the_message_and_keeps_what_arrived(
    bot: Bot, server: FakeOpenAI
) -> None:
    server.scripts.append(Script(chunks=["Half ", "an ", "answer"], cut_after=2))
    message = done(bot.chat("Go on"))
    assert message.isDone() is True
    assert message.stream_text == ["Half ", "an "]
    with pytest.raises(ProviderError):
        message.getFinalText()
    with pytest.raises(ProviderError):
        message.getText()
    history = bot.getHistoriesByID()
    assert isinstance(history, list)
    assert history[-1]["text"] == "Half an "  # the partial answer is stored


def test_custom_data_sends_sampling_settings(bot: Bot, server: FakeOpenAI) -> None:
    done(bot.chat("Hi", custom_data=RequestData(max_new_tokens=5, temperature=0.3, top_k=4)))
    sent = server.requests[-1]
    assert (sent["max_tokens"], sent["temperature"], sent["top_k"]) == (5, 0.3, 4)
    done(bot.chat("Hi", custom_data={"top_p": 0.5, "stop": ["\n"]}))
    assert (server.requests[-1]["top_p"], server.requests[-1]["stop"]) == (0.5, ["\n"])


@pytest.mark.parametrize(
    ("arguments", "why"),
    [
        ({"text": 5}, "text must be text"),
        ({"text": "Hi", "web_search": "yes"}, "web_search must be True, False or None"),
        ({"text": "Hi", "max_tries": 0}, "max_tries must be a whole number from 1"),
        ({"text": "Hi", "conversation_id": 12}, "conversation_id must be an id string"),
        ({"text": "Hi", "custom_data": "hot"}, "custom_data must be a RequestData"),
        ({"text": "Hi", "custom_data": {"repetition_penalty": 1.2}}, "does not know"),
        ({"text": "Hi", "custom_data": RequestData(temperature=5)}, "custom_data: temperature"),
        ({"text": "Hi", "wait": "no"}, "wait must be True or False"),
    ],
)
def test_wrong_arguments_fail_at_the_call(
    bot: Bot, server: FakeOpenAI, arguments: dict[str, Any], why: str
) -> None:
    with pytest.raises(InputError, match=why):
        bot.chat(**arguments)
    assert server.requests == []
    assert bot.conversations == {}  # nothing was made


def test_set_system_prompt_reaches_the_model_per_model(
    bot: Bot, server: FakeOpenAI, hug: HuggingChat
) -> None:
    assert bot.setSystemPrompt("test-model", "You are terse.") is None
    done(bot.chat("Hi"))
    assert server.requests[-1]["messages"][0] == {"role": "system", "content": "You are terse."}
    future = bot.setSystemPrompts({"test-model": "You rhyme.", "other-model": "You count."}, False)
    assert isinstance(future, Future)
    assert future.result(timeout=30) is None
    done(bot.chat("Hi"))
    assert server.requests[-1]["messages"][0]["content"] == "You rhyme."
    bot.setSystemPrompt("test-model", "")  # removed: chinwag's default again
    done(bot.chat("Hi"))
    assert server.requests[-1]["messages"][0]["content"] == "You are a helpful assistant."
    # A bot's own prompt comes first; the model's is below it.
    with Client() as client:
        client.bots.create(name="Poet", model="other-model", system_prompt="Rhyme.")
    poet = hug.getBot(model="poet")
    poet.setSystemPrompt("other-model", "You count.")
    done(poet.chat("Hi"))
    assert server.requests[-1]["messages"][0]["content"] == "Rhyme."
    with pytest.raises(InputError):
        bot.setSystemPrompts(["test-model"])  # type: ignore[arg-type]


def test_update_title_titles_the_conversation_now(bot: Bot, server: FakeOpenAI) -> None:
    message = done(bot.chat("Tell me about teapots"))
    cid = message.getConversation()
    assert cid is not None
    server.scripts.append(Script(text="Teapots"))
    assert bot.updateTitle(cid) == "Teapots"
    assert bot.conversations[cid] == "Teapots"
    with Client() as client:
        assert client.conversations.get(cid).title == "Teapots"
    server.scripts.append(Script(text="All about teapots"))
    future = bot.updateTitle(cid, wait=False)
    assert isinstance(future, Future)
    assert future.result(timeout=30) == "All about teapots"
    with pytest.raises(NotFoundError):
        bot.updateTitle("no-such-conversation")


def test_create_conversation_makes_it_current(bot: Bot) -> None:
    cid = bot.createConversation()
    assert isinstance(cid, str)
    assert bot.conversations == {cid: None}
    assert bot.current_conversation == cid
    future = bot.createConversation(wait=False)
    assert isinstance(future, Future)
    other = future.result(timeout=30)
    assert bot.current_conversation == other
    assert set(bot.conversations) == {cid, other}
    assert done(bot.chat("Where am I?")).getConversation() == other


def test_a_removed_conversation_is_gone(bot: Bot) -> None:
    message = done(bot.chat("Forget this"))
    cid = message.getConversation()
    assert cid is not None
    assert bot.removeConversation(cid) is None
    assert cid not in bot.conversations
    assert bot.current_conversation is None
    with Client() as client, pytest.raises(NotFoundError):
        client.conversations.get(cid)
    bot.fetchConversations()
    assert cid not in bot.conversations
    with pytest.raises(NotFoundError):
        bot.removeConversation(cid)
    kept = done(bot.chat("Keep this")).getConversation()
    assert kept is not None
    future = bot.removeConversation(kept, wait=False)
    assert isinstance(future, Future)
    assert future.result(timeout=30) is None
    assert bot.conversations == {}


def test_histories_by_id(bot: Bot) -> None:
    assert bot.getHistoriesByID() == []  # no current conversation yet
    message = done(bot.chat("One"))
    done(bot.chat("Two"))
    history = bot.getHistoriesByID()
    assert isinstance(history, list)
    assert [(h["is_user"], h["text"]) for h in history] == [
        (1, "One"), (0, "You said: One"), (1, "Two"), (0, "You said: Two"),
    ]  # fmt: skip
    assert {h["conversation_id"] for h in history} == {message.getConversation()}
    future = bot.getHistoriesByID(message.getConversation(), wait=False)
    assert isinstance(future, Future)
    assert future.result(timeout=30) == history


# -- models, bots and login ----------------------------------------------------------------------


def test_model_names_a_bot_or_a_provider_model(hug: HuggingChat, server: FakeOpenAI) -> None:
    with Client() as client:
        client.bots.create(name="Poet", model="other-model", system_prompt="Rhyme.")
    poet = hug.getBot("a@example.com", None, "poet")
    done(poet.chat("Hi"))
    assert server.requests[-1]["model"] == "other-model"
    assert server.requests[-1]["messages"][0]["content"] == "Rhyme."
    listed = hug.getBot(model=ListBots.META_70B_HF)  # a model name the provider may serve
    done(listed.chat("Hi"))
    assert server.requests[-1]["model"] == "meta-llama/Llama-2-70b-chat-hf"
    default = hug.getBot()
    assert default.model == "default"
    done(default.chat("Hi"))
    assert server.requests[-1]["model"] == "test-model"
    with pytest.raises(InputError):
        hug.getBot(model=42)  # type: ignore[arg-type]


# -- against a chinwag server: the login is the key ------------------------------------------------


def test_the_cookies_key_logs_in_and_the_turns_are_the_server_s(
    served: Served, library_env: FakeOpenAI
) -> None:
    user, key = served.new_user()  # no CHINWAG_API_KEY: the cookies carry the key
    with HuggingChat(base_url=served.url) as hug:
        bot = hug.getBot("user@example.com", {"api_key": key}, "test-model")
        assert bot.email == "user@example.com"  # kept, not checked: the key says who this is
        message = done(bot.chat("Hello, server!"))
        assert message.getFinalText() == "You said: Hello, server!"
        same = hug.getBot(cookies=key)  # the key itself will do as the cookies
        assert same.conversations == {message.getConversation(): "Hello, server!"}
    assert served.stored(user, message.getConversation()) == [
        ("user", "Hello, server!", "complete"),
        ("assistant", "You said: Hello, server!", "complete"),
    ]


def test_cookies_with_a_wrong_key_fail_the_login(served: Served, library_env: FakeOpenAI) -> None:
    with HuggingChat(base_url=served.url) as hug, pytest.raises(AccessError, match="not valid"):
        hug.getBot("user@example.com", {"api_key": "cw-not-a-key"})  # it fetches at once
    with HuggingChat(base_url=served.url) as hug, pytest.raises(AccessError, match="No API key"):
        hug.getBot("user@example.com", {"hf-chat": "a huggingface.co cookie"})
    assert library_env.requests == []


def test_two_logins_are_two_users_who_see_only_their_own(
    served: Served, library_env: FakeOpenAI
) -> None:
    alice, alice_key = served.new_user()
    _, bob_key = served.new_user()
    with HuggingChat(base_url=served.url) as hug:
        as_alice = hug.getBot("alice@example.com", {"api_key": alice_key})
        as_bob = hug.getBot("bob@example.com", {"api_key": bob_key})
        secret = done(as_alice.chat("Alice's secret")).getConversation()
        assert secret is not None
        as_bob.fetchConversations()
        assert as_bob.conversations == {}
        for reach in (
            lambda: as_bob.getHistoriesByID(secret),
            lambda: as_bob.removeConversation(secret),
            lambda: as_bob.updateTitle(secret),
            lambda: as_bob.switchConversation(secret),
            lambda: as_bob.chat("Mine now", conversation_id=secret).getFinalText(),
        ):  # as a missing id: nothing says it exists
            with pytest.raises(NotFoundError):
                reach()
    assert [m[1] for m in served.stored(alice, secret)] == [
        "Alice's secret", "You said: Alice's secret",
    ]  # fmt: skip
