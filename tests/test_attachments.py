"""Files attached to a turn: typed, limited, sent, stored and shown, through the real path
(the OpenAI-compatible provider against the fake server on 127.0.0.1)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chinwag import Client, Config
from chinwag.errors import ChinwagError, InputError, NotFoundError
from tests.conftest import GIF, PNG, Runner, Served, make_config
from tests.fake_openai import FakeOpenAI


@pytest.fixture
def client(config: Config) -> Iterator[Client]:
    config.set("providers.openai.max_retries", 0)
    with Client(config) as client:
        yield client


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "notes.md").write_text("# Notes\n\nTea at five.\n", encoding="utf-8")
    (folder / "cat.png").write_bytes(PNG)
    return folder


def _parts(message: dict[str, Any]) -> tuple[str, list[str]]:
    """A sent message's text, and the data: URLs of its image parts."""
    content = message["content"]
    if isinstance(content, str):
        return content, []
    text = "".join(p["text"] for p in content if p["type"] == "text")
    return text, [p["image_url"]["url"] for p in content if p["type"] == "image_url"]


def _data_url(data: bytes, kind: str) -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def test_text_goes_into_the_prompt_under_its_name_and_images_as_parts(
    client: Client, server: FakeOpenAI, files: Path
) -> None:
    reply = client.ask("Summarize these", files=[files / "notes.md", str(files / "cat.png")])
    text, images = _parts(server.requests[-1]["messages"][-1])
    assert text == "File: notes.md\n```\n# Notes\n\nTea at five.\n```\n\nSummarize these"
    assert images == [_data_url(PNG, "image/png")]
    question = client.conversations.history(reply.conversation_id)[0]
    assert question.content == "Summarize these"  # the files are kept beside the text
    assert [(f.name, f.media_type, f.size) for f in question.attachments] == [
        ("notes.md", "text/markdown", 22),
        ("cat.png", "image/png", len(PNG)),
    ]
    assert question.attachments[1].sha256 == hashlib.sha256(PNG).hexdigest()
    assert client.conversations.attachment(question.attachments[1].sha256) == PNG


def test_later_turns_send_earlier_files_again(
    client: Client, server: FakeOpenAI, files: Path
) -> None:
    first = client.ask("Look", files=[files / "notes.md", files / "cat.png"])
    client.ask("And this one?", files=[("dog.gif", GIF)], conversation=first.conversation_id)
    sent = server.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    earlier, earlier_images = _parts(sent[1])
    assert "File: notes.md\n```\n# Notes" in earlier
    assert earlier_images == [_data_url(PNG, "image/png")]
    assert _parts(sent[3]) == ("And this one?", [_data_url(GIF, "image/gif")])
    # A retry answers the stored question again, its files included.
    client.conversations.retry(first.conversation_id)
    assert _parts(server.requests[-1]["messages"][-1])[1] == [_data_url(GIF, "image/gif")]


def test_bytes_and_named_bytes(client: Client, server: FakeOpenAI) -> None:
    reply = client.ask("Two", files=[PNG, ("todo.txt", b"buy milk\n")])
    names = [f.name for f in client.conversations.history(reply.conversation_id)[0].attachments]
    assert names == ["attachment-1.png", "todo.txt"]
    assert "File: todo.txt\n```\nbuy milk\n```" in _parts(server.requests[-1]["messages"][-1])[0]
    # A name is a name, not a path: only its last segment is kept.
    again = client.ask("Three", files=[("../../etc/passwd", b"root\n")])
    assert client.conversations.history(again.conversation_id)[0].attachments[0].name == "passwd"


def test_a_fence_inside_a_file_cannot_close_its_block(client: Client, server: FakeOpenAI) -> None:
    code = b"Example:\n```\nprint(1)\n````\nend\n"
    client.ask("Read", files=[("readme.md", code)])
    text = _parts(server.requests[-1]["messages"][-1])[0]
    assert text == "File: readme.md\n`````\nExample:\n```\nprint(1)\n````\nend\n`````\n\nRead"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (lambda d: [d], "is a folder: attach the files in it"),
        (lambda d: [d / "missing.txt"], "No file {d}/missing.txt: check the path."),
        (lambda d: [("empty.txt", b"")], "empty.txt is empty: there is nothing to attach."),
        (lambda d: [("blob.bin", os.urandom(64) + b"\x00")], "binary data of an unknown type"),
        (lambda d: [("data.zip", b"PK\x03\x04rest")], "a ZIP archive"),
        (lambda d: [("paper.pdf", b"%PDF-1.7\n...")], "a PDF, which chinwag cannot attach"),
        (lambda d: [("latin1.txt", "caf\xe9\n".encode("latin-1"))], "byte 0xe9 on line 1"),
        (lambda d: [("photo.png", b"not an image at all\x00")], "named like an image"),
        (lambda d: [("scan.bmp", b"BM\x00\x00rest")], "Convert it to PNG or JPEG."),
        (lambda d: "notes.txt", "files must be a list of paths or bytes"),
        (lambda d: [42], "files[0] must be a path (str or pathlib.Path), bytes"),
        (lambda d: [("a.txt", "not bytes")], "files[0] must be a path"),
        (lambda d: [("bad\nname.txt", b"x")], "a file name of 1 to 255 printable characters"),
        (lambda d: ["nul\x00.txt"], "holds a NUL character"),
    ],
)
def test_what_cannot_be_attached_is_refused_before_anything_is_stored_or_sent(
    client: Client, server: FakeOpenAI, tmp_path: Path, given: Any, message: str
) -> None:
    conversation = client.conversations.create()
    with pytest.raises(InputError) as refused:
        client.ask("Look", files=given(tmp_path), conversation=conversation.id)
    assert message.format(d=tmp_path) in str(refused.value)
    assert server.requests == []
    assert client.conversations.history(conversation.id) == []


def test_limits_are_checked_before_anything_is_stored_or_sent(
    client: Client, server: FakeOpenAI, tmp_path: Path
) -> None:
    big = tmp_path / "big.txt"
    big.write_text("x" * 2_000)
    conversation = client.conversations.create()
    client.config.set("attachments.max_bytes", 1_000)
    with pytest.raises(InputError) as refused:
        client.ask("Look", files=[big], conversation=conversation.id)
    assert str(refused.value) == (
        f"{big} is 2,000 bytes, over the limit of 1,000 for one file (attachments.max_bytes): "
        "attach a smaller file, or raise the limit (chinwag config set attachments.max_bytes N)."
    )
    with pytest.raises(InputError, match=r"attachments\.max_bytes"):
        client.ask("Look", files=[b"y" * 1_001], conversation=conversation.id)
    client.config.set("attachments.max_total", 1_500)
    with pytest.raises(InputError, match=r"more than 1,500 bytes.*attachments\.max_total"):
        client.ask("Look", files=[b"a" * 800, b"b" * 800], conversation=conversation.id)
    client.config.set("attachments.max_files", 2)
    with pytest.raises(InputError, match=r"3 files are attached.*attachments\.max_files"):
        client.ask("Look", files=[b"a", b"b", b"c"], conversation=conversation.id)
    # A device that never ends is read only up to the limit.
    with pytest.raises(InputError, match="over the limit of 1,000 for one file"):
        client.ask("Look", files=["/dev/zero"], conversation=conversation.id)
    assert server.requests == []
    assert client.conversations.history(conversation.id) == []
    with pytest.raises(ChinwagError, match=r"attachments\.max_bytes"):
        client.config.set("attachments.max_bytes", 0)


def test_a_huge_file_is_refused_unread(client: Client, server: FakeOpenAI, tmp_path: Path) -> None:
    huge = tmp_path / "huge.log"
    with huge.open("wb") as f:
        f.truncate(10_000_000_000)  # 10 GB, sparse: reading it would take minutes
    with pytest.raises(InputError, match="is 10,000,000,000 bytes, over the limit of 5,000,000"):
        client.ask("Read", files=[huge])
    assert server.requests == []


def test_a_pipe_is_read_like_a_file(client: Client, server: FakeOpenAI) -> None:
    read, write = os.pipe()
    os.write(write, b"piped text\n")
    os.close(write)
    try:
        client.ask("From a pipe", files=[f"/dev/fd/{read}"])
    finally:
        os.close(read)
    assert "piped text" in _parts(server.requests[-1]["messages"][-1])[0]


def test_a_named_pipe_nobody_writes_to_is_refused_not_waited_for(
    run: Runner, tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    asked = subprocess.run(
        [sys.executable, "-m", "chinwag", "ask", "-a", str(fifo), "hi"],
        env=run.env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert asked.returncode == 1
    assert "fifo is empty" in asked.stderr
    assert time.monotonic() - started < 30


def test_a_file_that_changes_while_it_is_read_is_refused(
    client: Client, server: FakeOpenAI, tmp_path: Path
) -> None:
    growing = tmp_path / "log.txt"
    growing.write_text("line\n" * 200_000)  # 1 MB: a read long enough to be written during
    client.config.set("attachments.max_bytes", 100_000_000)
    # Another program appends to it all the while (a process: no GIL between the two).
    append = (
        "import sys\nwith open(sys.argv[1], 'a') as f:\n while True: f.write('more\\n'); f.flush()"
    )
    writer = subprocess.Popen([sys.executable, "-c", append, str(growing)])
    try:
        refusals: list[str] = []
        size, deadline = growing.stat().st_size, time.monotonic() + 30
        while growing.stat().st_size == size and time.monotonic() < deadline:
            time.sleep(0.01)  # until it has started
        for _ in range(50):  # each read is all but sure to see a write; one is enough
            try:
                client.ask("Read the log", files=[growing])
            except InputError as exc:
                refusals.append(str(exc))
                break
    finally:
        writer.kill()
        writer.wait()
    assert refusals == [
        f"{growing} changed while chinwag read it: attach it again once it is written."
    ]


def test_retry_takes_no_new_files(client: Client) -> None:
    reply = client.ask("Hi")
    with pytest.raises(InputError, match="retry answers the stored question again"):
        client.conversations.retry(reply.conversation_id, files=[b"text"])


def test_an_edit_asks_with_its_own_files(client: Client, server: FakeOpenAI) -> None:
    reply = client.ask("Read this", files=[("a.txt", b"first file")])
    question = client.conversations.history(reply.conversation_id)[0]
    edited = client.conversations.edit(question.id, "Read that", files=[("b.txt", b"second")])
    text = _parts(server.requests[-1]["messages"][-1])[0]
    assert "File: b.txt" in text
    assert "a.txt" not in text
    now = client.conversations.history(edited.conversation_id)
    assert [f.name for f in now[0].attachments] == ["b.txt"]


def test_a_question_may_be_files_alone(client: Client, server: FakeOpenAI) -> None:
    client.ask("", files=[("q.txt", b"What is 2 + 2?")])
    assert _parts(server.requests[-1]["messages"][-1])[0] == "File: q.txt\n```\nWhat is 2 + 2?\n```"
    with pytest.raises(InputError, match="The prompt is empty"):
        client.ask("")


def test_a_server_of_text_models_gets_no_images(
    server: FakeOpenAI, files: Path, tmp_path: Path
) -> None:
    with Client(make_config(server)) as client:
        reply = client.ask("Look", files=[files / "cat.png"])
    config = make_config(server, **{"providers.openai.images": False})
    with Client(config) as client:
        conversation = reply.conversation_id
        with pytest.raises(InputError) as refused:
            client.ask("And this?", files=[("dog.gif", GIF)], conversation=conversation)
        assert "(providers.openai.images is false), so dog.gif cannot be sent" in str(refused.value)
        # An earlier image stays in the conversation: the model reads that it was there.
        client.ask("What did I show you?", conversation=conversation)
    text, images = _parts(server.requests[-1]["messages"][1])
    assert images == []
    assert text == "(The image cat.png was attached here; this model takes no images.)\n\nLook"


def test_files_count_toward_the_context_window(client: Client, server: FakeOpenAI) -> None:
    client.config.set('models."test-model".context_window', 2_000)
    first = client.ask("Read", files=[("long.txt", b"word " * 1_400)])  # about 1,750 tokens
    reply = client.ask("Short question", conversation=first.conversation_id)
    assert reply.trimmed_messages == 2  # the question with its file, and its answer
    assert [m["content"] for m in server.requests[-1]["messages"][1:]] == ["Short question"]
    # An image counts as a fixed 765 tokens: two earlier ones leave no room beside this.
    second = client.ask("One", files=[PNG, GIF])
    reply = client.ask("Two", conversation=second.conversation_id, max_tokens=500)
    assert reply.trimmed_messages == 2


def test_a_message_list_carries_image_and_file_parts(client: Client, server: FakeOpenAI) -> None:
    image = {"type": "image_url", "image_url": {"url": _data_url(PNG, "image/png")}}
    file = {
        "type": "file",
        "file": {"filename": "n.txt", "file_data": base64.b64encode(b"hi").decode()},
    }
    reply = client.chat(
        [
            {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]},
            {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": [{"type": "text", "text": "And this?"}, file]},
        ]
    )
    sent = server.requests[-1]["messages"]
    assert _parts(sent[1]) == ("What is this?", [_data_url(PNG, "image/png")])
    assert _parts(sent[3])[0] == "File: n.txt\n```\nhi\n```\n\nAnd this?"
    history = client.conversations.history(reply.conversation_id)
    assert [[f.name for f in m.attachments] for m in history] == [
        ["attachment-1.png"], [], ["n.txt"], [],
    ]  # fmt: skip
    for part, message in [
        (
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            "fetches none",
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,%%%"}},
            "not valid base64",
        ),
        ({"type": "input_audio", "input_audio": {}}, "must be a text, image_url or file part"),
    ]:
        with pytest.raises(InputError, match=message):
            client.chat([{"role": "user", "content": [part]}])
    with pytest.raises(InputError, match="only the user's messages may carry"):
        client.chat([{"role": "system", "content": [image]}, {"role": "user", "content": "hi"}])


def test_export_and_import_carry_the_files(client: Client, files: Path) -> None:
    reply = client.ask("Keep these", files=[files / "notes.md", files / "cat.png"])
    exported = client.conversations.export(reply.conversation_id)
    markdown = client.conversations.export(reply.conversation_id, format="markdown")
    assert (
        f"*Attached: notes.md (text/markdown, 22 bytes), cat.png (image/png, {len(PNG)} bytes)*"
        in markdown
    )
    client.conversations.delete(reply.conversation_id)
    sha = hashlib.sha256(PNG).hexdigest()
    with pytest.raises(NotFoundError):
        client.conversations.attachment(sha)  # gone with its conversation
    restored = client.conversations.import_json(exported)
    question = client.conversations.history(restored.id)[0]
    assert [f.name for f in question.attachments] == ["notes.md", "cat.png"]
    assert client.conversations.attachment(sha) == PNG
    # An export whose file is changed, or missing, is refused whole.
    client.conversations.delete(restored.id)
    data = json.loads(exported)
    data["files"][sha] = base64.b64encode(GIF).decode()
    with pytest.raises(InputError, match="does not match its sha256"):
        client.conversations.import_json(json.dumps(data))
    del data["files"][sha]
    with pytest.raises(InputError, match="whose bytes are not in the export"):
        client.conversations.import_json(json.dumps(data))
    # Nor does an edited export carry more files than a question may, or costs that are not.
    data = json.loads(exported)
    data["messages"][0]["attachments"] *= 11  # 22 copies: more than max_files (20)
    with pytest.raises(InputError, match=r"more than attachments\.max_files"):
        client.conversations.import_json(json.dumps(data))
    for cost in (-1000, 1e308):
        data = json.loads(exported)
        data["messages"][1]["usage"]["cost"] = cost
        with pytest.raises(InputError, match="cost"):
            client.conversations.import_json(json.dumps(data))
    assert client.conversations.list() == []


def test_another_users_files_are_not_found(client: Client) -> None:
    reply = client.ask("Mine", files=[("secret.txt", b"the code is 1234")], user="alice")
    sha = client.conversations.history(reply.conversation_id, user="alice")[0].attachments[0].sha256
    assert client.conversations.attachment(sha, user="alice") == b"the code is 1234"
    with pytest.raises(NotFoundError):
        client.conversations.attachment(sha, user="bob")
    with pytest.raises(NotFoundError):
        client.conversations.attachment("0" * 64, user="alice")


def test_a_servers_key_reaches_its_own_users_files_only(served: Served) -> None:
    _, alice_key = served.new_user()
    _, bob_key = served.new_user()
    with (
        Client(base_url=served.url, api_key=alice_key) as alice,
        Client(base_url=served.url, api_key=bob_key) as bob,
    ):
        reply = alice.ask("Mine", files=[("cat.png", PNG)])
        sha = alice.conversations.history(reply.conversation_id)[0].attachments[0].sha256
        assert alice.conversations.attachment(sha) == PNG
        with pytest.raises(NotFoundError):
            bob.conversations.attachment(sha)

    def fetch(sha256: str, key: str) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"}
        return httpx.get(f"{served.url}/api/v1/attachments/{sha256}", headers=headers)

    theirs, missing = fetch(sha, bob_key), fetch("0" * 64, bob_key)
    assert theirs.status_code == missing.status_code == 404  # as if it did not exist
    assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "NotFoundError"
    mine = fetch(sha, alice_key)
    assert (mine.status_code, mine.content, mine.headers["content-type"]) == (200, PNG, "image/png")
    assert fetch(sha, "cw-not-a-key").status_code == 401


def test_a_keys_token_limit_counts_the_files_before_anything_is_sent(
    served: Served, server: FakeOpenAI
) -> None:
    user, _ = served.new_user()
    key = served.admin.accounts.create_key(user, tpm=1_000).key
    with Client(base_url=served.url, api_key=key) as remote:
        asked = len(server.requests)
        assert remote.ask("Short", max_tokens=10).text  # the question alone fits
        notes = ("notes.txt", b"word " * 2_000)  # about 2,500 tokens: over the minute's 1,000
        with pytest.raises(InputError, match=r"more than the key's limit of 1,000"):
            remote.ask("Read this", files=[notes], max_tokens=10)
        assert len(server.requests) == asked + 1  # the refused one never reached the model
        assert [c.title for c in remote.conversations.list()] == ["Short"]  # nor the store
