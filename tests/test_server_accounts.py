"""Users, API keys, isolation between users, and the keys' limits, through a real
`chinwag serve` on 127.0.0.1 and the `chinwag users` / `chinwag keys` commands."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Runner
from tests.fake_openai import FakeOpenAI, Script
from tests.server import chinwag_serve


def new_key(run: Runner, user: str, *options: str, admin: bool = False) -> str:
    """A user (added if new) and a fresh key of theirs, through the commands."""
    listed = run("users", "list").stdout.split()
    if user not in listed:
        added = run("users", "add", user, *(["--admin"] if admin else []))
        assert added.returncode == 0, added.stderr
    made = run("keys", "create", "--user", user, *options)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def ask(base: str, key: str, prompt: str = "hi", **more: Any) -> httpx.Response:
    body = {"model": "default", "messages": [{"role": "user", "content": prompt}], **more}
    return httpx.post(f"{base}/v1/chat/completions", json=body, headers=auth(key), timeout=30)


def hang_up(base: str, key: str, **more: Any) -> str:
    """Stream a chat completion and go away after 100 characters of it: what was seen."""
    body = {"model": "default", "stream": True,
            "messages": [{"role": "user", "content": "go"}], **more}  # fmt: skip
    seen = ""
    with httpx.stream(
        "POST", f"{base}/v1/chat/completions", json=body, headers=auth(key), timeout=30
    ) as answer:
        for line in answer.iter_lines():
            if line.startswith("data: {"):
                seen += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            if len(seen) > 100:
                break
    return seen


def windows(home: Path) -> dict[str, tuple[int, int]]:
    """The key windows in the store: span -> (requests, tokens)."""
    db = sqlite3.connect(home / "chinwag.db")
    try:
        rows = db.execute("SELECT span, requests, tokens FROM key_windows").fetchall()
    finally:
        db.close()
    return {span: (requests, tokens) for span, requests, tokens in rows}


@pytest.fixture
def keyed(run: Runner) -> Iterator[tuple[str, str]]:
    """A server that has a key: its URL and alice's key."""
    key = new_key(run, "alice")
    with chinwag_serve(run.env) as (base, _):
        yield base, key


def test_keys_are_shown_once_and_stored_only_as_a_hash(run: Runner, home: Path) -> None:
    assert run("users", "add", "alice", "--admin").stdout.strip() == "alice (admin)"
    again = run("users", "add", "alice")
    assert again.returncode == 1
    assert "exists already" in again.stderr
    made = run("keys", "create", "--user", "alice", "--name", "laptop", "--rpm", "5",
               "--expires", "2099-12-31")  # fmt: skip
    key = made.stdout.strip()
    assert key.startswith("cw-")
    assert len(key) >= 3 + 22
    assert "not shown again" in made.stderr
    listed = run("keys", "list").stdout
    assert "laptop" in listed
    assert "rpm 5" in listed
    assert key not in listed
    assert key[:10] in listed  # its prefix, to tell keys apart
    db = sqlite3.connect(home / "chinwag.db")
    try:
        stored = db.execute("SELECT * FROM api_keys").fetchall()
    finally:
        db.close()
    assert len(stored) == 1
    assert not any(key in str(value) for value in stored[0])
    assert hashlib.sha256(key.encode()).hexdigest() in stored[0]
    second = run("keys", "create", "--user", "alice").stdout.strip()
    assert second != key
    for args, why in [
        (("keys", "create", "--user", "nobody"), "chinwag users add nobody"),
        (("keys", "create", "--user", "alice", "--expires", "2001-01-01"), "in the past"),
        (("keys", "create", "--user", "alice", "--expires", "soon"), "2027-01-31"),
        (("keys", "create", "--user", "alice", "--rpm", "0"), "0"),
        (("keys", "revoke", "key_nope"), "chinwag keys list"),
    ]:
        failed = run(*args)
        assert failed.returncode != 0, args
        assert why in failed.stderr, (args, failed.stderr)
        assert "Traceback" not in failed.stderr
    key_id = listed.split()[0]
    assert run("keys", "revoke", key_id).returncode == 0
    assert "revoked" in run("keys", "list").stdout


def test_one_check_for_both_headers_and_revocation_on_the_next_request(
    keyed: tuple[str, str], run: Runner, home: Path
) -> None:
    base, key = keyed
    models = f"{base}/v1/models"
    assert httpx.get(models, headers=auth(key)).status_code == 200
    assert httpx.get(models, headers={"x-api-key": key}).status_code == 200
    refusals: list[list[tuple[str, str]]] = [
        [],
        list(auth("cw-" + "x" * 43).items()),
        [("x-api-key", key[:-1])],
        [("authorization", key)],  # not a Bearer credential
        [*auth(key).items(), ("x-api-key", key + "x")],  # two keys: one of them wrong
        [("x-api-key", key), ("x-api-key", key + "x")],  # a header twice, two keys
        [("authorization", f"Bearer {key}"), ("authorization", "Bearer cw-other")],
    ]
    for headers in refusals:
        refused = httpx.get(models, headers=headers)
        assert refused.status_code == 401, headers
        assert refused.json()["error"]["type"] == "authentication_error"
        # The key is checked before the body is read, on every route: a stranger's body,
        # valid or not, gets the same 401.
        for body in (b"[]", b'{"model": "default", "messages": []}', b"{not json"):
            completion = httpx.post(
                f"{base}/v1/chat/completions", content=body,
                headers=[*headers, ("content-type", "application/json")],
            )  # fmt: skip
            assert completion.status_code == 401, (headers, body)
    # The health check is the one thing open, and it tells nothing private.
    health = httpx.get(f"{base}/api/v1/health")
    assert health.status_code == 200
    assert set(health.json()) == {"ok", "version"}
    assert httpx.get(f"{base}/api/v1/health/details").status_code == 401
    key_id = run("keys", "list").stdout.split()[0]
    assert run("keys", "revoke", key_id).returncode == 0
    revoked = httpx.get(models, headers=auth(key))
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["error"]["message"]
    with (
        openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError),
    ):
        sdk.models.list()
    # An expired key fails the same way (its expiry moved into the past in the store).
    later = new_key(run, "alice", "--expires", "2099-01-01")
    assert httpx.get(models, headers=auth(later)).status_code == 200
    db = sqlite3.connect(home / "chinwag.db")
    with db:
        db.execute("UPDATE api_keys SET expires_at = '2001-01-01 00:00:00.000000'")
    db.close()
    expired = httpx.get(models, headers=auth(later))
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]


def test_with_a_key_serve_may_listen_beyond_loopback(run: Runner) -> None:
    new_key(run, "alice")
    with chinwag_serve(run.env, "--host", "0.0.0.0") as (base, _):
        assert httpx.get(f"{base}/v1/models").status_code == 401
        assert httpx.get(f"{base}/api/v1/health").json()["ok"] is True


def test_the_open_health_check_does_not_call_providers_at_a_strangers_pace(
    run: Runner, server: FakeOpenAI
) -> None:
    new_key(run, "alice")
    with chinwag_serve(run.env) as (base, _):
        server.model_lists = 0  # what starting (and waiting for it) asked
        answers = [httpx.get(f"{base}/api/v1/health") for _ in range(20)]
    assert all(a.status_code == 200 and a.json()["ok"] is True for a in answers)
    assert server.model_lists < 5  # one check serves a few seconds, not one request


def test_another_users_ids_read_as_missing_and_stay_unchanged(
    keyed: tuple[str, str], run: Runner, server: FakeOpenAI
) -> None:
    base, alice = keyed
    bob = new_key(run, "bob")
    api = f"{base}/api/v1"
    # Alice's things: a bot, a conversation with a turn, a message, a key.
    bot = httpx.post(f"{api}/bots", json={"name": "Secret"}, headers=auth(alice)).json()
    cid = httpx.post(f"{api}/conversations", json={"title": "Mine"}, headers=auth(alice)).json()[
        "id"
    ]
    reply = httpx.post(
        f"{api}/conversations/{cid}/messages", json={"prompt": "private"}, headers=auth(alice)
    ).json()
    mid = reply["message_id"]
    key_id = httpx.get(f"{api}/keys", headers=auth(alice)).json()[0]["id"]
    before = httpx.get(f"{api}/conversations/{cid}/messages", headers=auth(alice)).json()
    calls = len(server.requests)

    def attempts(c: str, m: str, b: str, k: str) -> list[tuple[str, str, dict[str, Any] | None]]:
        return [
            ("GET", f"/conversations/{c}", None),
            ("GET", f"/conversations/{c}/messages", None),
            ("GET", f"/conversations/{c}/messages?all=true", None),
            ("PATCH", f"/conversations/{c}", {"title": "stolen"}),
            ("POST", f"/conversations/{c}/messages", {"prompt": "mine now"}),
            ("POST", f"/conversations/{c}/retry", {}),
            ("POST", f"/conversations/{c}/retry", {"stream": True}),
            ("POST", f"/conversations/{c}/current", {"message_id": m}),
            ("GET", f"/conversations/{c}/export", None),
            ("GET", f"/conversations/{c}/export?format=markdown", None),
            ("POST", f"/conversations/{c}/title", None),
            ("DELETE", f"/conversations/{c}", None),
            ("POST", f"/messages/{m}/edit", {"text": "changed"}),
            ("POST", f"/messages/{m}/edit", {"text": "changed", "stream": True}),
            ("GET", f"/bots/{b}", None),
            ("PATCH", f"/bots/{b}", {"system_prompt": "leak"}),
            ("DELETE", f"/bots/{b}", None),
            ("GET", f"/keys/{k}", None),
            ("DELETE", f"/keys/{k}", None),
            ("POST", "/chat", {"bot": b, "prompt": "use it"}),
        ]

    theirs = attempts(cid, mid, bot["uid"], key_id)
    nobodys = attempts("0" * 32, "1" * 32, "no-such-bot", "key_0000000000000000")
    for (method, path, body), (_, missing, _) in zip(theirs, nobodys, strict=True):
        got = httpx.request(method, f"{api}{path}", json=body, headers=auth(bob))
        none = httpx.request(method, f"{api}{missing}", json=body, headers=auth(bob))
        assert got.status_code == none.status_code == 404, (method, path, got.text)
        assert got.json()["error"]["code"] == none.json()["error"]["code"]
    for slug in (bot["slug"], bot["name"]):
        assert httpx.get(f"{api}/bots/{slug}", headers=auth(bob)).status_code == 404
    header = {**auth(bob), "x-chinwag-conversation": cid}
    body = {"model": "default", "messages": [{"role": "user", "content": "x"}]}
    sneaked = httpx.post(f"{base}/v1/chat/completions", json=body, headers=header)
    assert sneaked.status_code == 404
    assert ask(base, bob, model=bot["slug"]).status_code == 404
    models = httpx.get(f"{base}/v1/models", headers=auth(bob)).json()["data"]
    assert bot["slug"] not in [m["id"] for m in models]
    # Fields that name someone else are not a scope: bob stays bob.
    assert ask(base, bob, user="alice").status_code == 200
    assert httpx.get(f"{api}/conversations", headers=auth(bob)).json() == []
    stolen = httpx.post(
        f"{api}/chat", json={"prompt": "x", "user": "alice"}, headers=auth(bob)
    )  # an unknown field of chinwag's own API is refused, never obeyed
    assert stolen.status_code == 400
    for path in ("/stats/usage?user=alice", "/stats/day?user=alice", "/users", "/keys?user=alice"):
        assert httpx.get(f"{api}{path}", headers=auth(bob)).status_code == 403, path
    assert httpx.post(f"{api}/keys", json={"user": "bob"}, headers=auth(bob)).status_code == 403
    # Bob's own conversation does not open a door to alice's messages either.
    own = httpx.post(f"{api}/conversations", json={}, headers=auth(bob)).json()["id"]
    crossed = httpx.post(
        f"{api}/conversations/{own}/current", json={"message_id": mid}, headers=auth(bob)
    )
    assert crossed.status_code == 404
    # Alice's things are as they were, and her key still works.
    after = httpx.get(f"{api}/conversations/{cid}/messages", headers=auth(alice)).json()
    assert after == before
    assert httpx.get(f"{api}/conversations/{cid}", headers=auth(alice)).json()["title"] == "Mine"
    kept = httpx.get(f"{api}/bots/{bot['uid']}", headers=auth(alice)).json()
    assert kept == bot
    assert len(server.requests) == calls + 1  # bob's one call as himself, nothing of alice's
    assert httpx.get(f"{api}/stats/day", headers=auth(alice)).json()["requests"] == 1


def test_an_admin_key_sees_every_user_and_manages_keys(run: Runner) -> None:
    root = new_key(run, "root", admin=True)
    alice = new_key(run, "alice")
    with chinwag_serve(run.env) as (base, _):
        api = f"{base}/api/v1"
        assert ask(base, alice).status_code == 200
        names = [u["name"] for u in httpx.get(f"{api}/users", headers=auth(root)).json()]
        assert names == ["alice", "root"]
        usage = httpx.get(f"{api}/stats/total?user=alice", headers=auth(root)).json()
        assert usage["requests"] == 1
        made = httpx.post(f"{api}/keys", json={"user": "alice", "rpm": 2}, headers=auth(root))
        assert made.status_code == 201
        fresh = made.json()["key"]
        assert ask(base, fresh).status_code == 200
        listed = httpx.get(f"{api}/keys?user=alice", headers=auth(root)).json()
        assert all("key" not in k and "hash" not in k for k in listed)
        gone = httpx.delete(f"{api}/keys/{made.json()['id']}", headers=auth(root))
        assert gone.status_code == 200
        assert gone.json()["revoked_at"]
        assert ask(base, fresh).status_code == 401
        added = httpx.post(f"{api}/users", json={"name": "carol"}, headers=auth(root))
        assert added.status_code == 201
        assert added.json()["admin"] is False


def test_a_spent_minute_is_429_with_retry_after(run: Runner, server: FakeOpenAI) -> None:
    key = new_key(run, "alice", "--rpm", "3")
    with chinwag_serve(run.env) as (base, _):
        for _ in range(3):
            assert ask(base, key).status_code == 200
            # Reads are not model calls: they do not count.
            assert httpx.get(f"{base}/api/v1/conversations", headers=auth(key)).status_code == 200
        refused = ask(base, key)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "x-should-retry" not in refused.headers
        assert refused.json()["error"]["type"] == "rate_limit_error"
        streamed = ask(base, key, stream=True)
        assert streamed.status_code == 429  # before the first byte
        assert len(server.requests) == 3


def test_a_spent_day_is_final_and_tokens_are_settled_to_what_was_used(
    run: Runner, server: FakeOpenAI, home: Path
) -> None:
    key = new_key(run, "alice", "--max-tokens-per-day", "120")
    with chinwag_serve(run.env) as (base, _):
        big = ask(base, key, max_tokens=500)
        assert big.status_code == 400
        assert "lower max_tokens" in big.json()["error"]["message"]
        first = ask(base, key, max_tokens=40)
        assert first.status_code == 200
        used = first.json()["usage"]["total_tokens"]
        db = sqlite3.connect(home / "chinwag.db")
        try:
            (spent,) = db.execute("SELECT tokens FROM key_windows WHERE span = 'day'").fetchone()
        finally:
            db.close()
        assert spent == used  # the reservation (prompt + 40) was replaced by the usage
        refused = None
        for _ in range(20):  # bounded: each call spends at least a few tokens
            answer = ask(base, key, max_tokens=40)
            if answer.status_code == 429:
                refused = answer
                break
        assert refused is not None
        assert refused.headers["x-should-retry"] == "false"
        assert "midnight UTC" in refused.json()["error"]["message"]
        calls = len(server.requests)
        with openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=3) as sdk:
            started = time.monotonic()
            with pytest.raises(openai.RateLimitError):
                sdk.chat.completions.create(
                    model="default", messages=[{"role": "user", "content": "x"}], max_tokens=40
                )
            assert time.monotonic() - started < 5  # the SDK did not sit out Retry-After
        assert len(server.requests) == calls


def test_both_windows_settle_to_what_was_used(run: Runner, home: Path) -> None:
    key = new_key(run, "alice", "--tpm", "100000", "--max-tokens-per-day", "1000000")
    with chinwag_serve(run.env) as (base, _):
        while time.time() % 60 > 50:  # all three inside one minute's window
            time.sleep(0.5)
        answers = [ask(base, key, f"question {i}") for i in range(3)]
    used = sum(a.json()["usage"]["total_tokens"] for a in answers)
    # Each call reserved its prompt plus server.reserve_tokens (1024) in both windows; the
    # minute must come back to the usage as the day does, or --tpm refuses too early.
    assert windows(home) == {"minute": (3, used), "day": (3, used)}


def test_refused_requests_spend_no_limit(run: Runner, server: FakeOpenAI, home: Path) -> None:
    key = new_key(run, "alice", "--rpm", "2", "--max-tokens-per-day", "100000")
    api_headers = auth(key)
    with chinwag_serve(run.env) as (base, _):
        while time.time() % 60 > 45:  # every request inside one minute's window
            time.sleep(0.5)
        api = f"{base}/api/v1"
        for stream in (False, True):
            assert ask(base, key, temperature=9, stream=stream).status_code == 400
            missing = httpx.post(
                f"{api}/conversations/{'0' * 32}/messages",
                json={"prompt": "x", "stream": stream},
                headers=api_headers,
            )
            assert missing.status_code == 404
            bad = httpx.post(
                f"{api}/chat", json={"prompt": "x", "max_words": -1}, headers=api_headers
            )
            assert bad.status_code == 400
        assert server.requests == []
        # Refused while planned, before the key was counted: no window holds anything.
        assert set(windows(home).values()) <= {(0, 0)}
        # The two requests of this minute are still there for real calls.
        assert [ask(base, key).status_code for _ in range(3)] == [200, 200, 429]


def test_a_client_that_hangs_up_mid_stream_pays_for_what_it_was_sent(
    run: Runner, server: FakeOpenAI, home: Path
) -> None:
    key = new_key(run, "alice", "--max-tokens-per-day", "100000")
    server.script(Script(text=" ".join(f"word{i}" for i in range(200)), chunk_delay=0.02))
    with chinwag_serve(run.env) as (base, _):
        seen = hang_up(base, key)
        spent = 0
        for _ in range(100):  # the server settles once it notices the client has gone
            spent = windows(home)["day"][1]
            if spent < 1024:  # no longer the reservation (the prompt and 1024)
                break
            time.sleep(0.1)
    # The reservation was replaced by the prompt and the text sent, not by nothing.
    assert spent >= len(seen) // 4 + 1
    assert spent < 1024


@pytest.mark.postgres
def test_a_rate_limit_holds_across_two_workers(run: Runner, postgres_url: str) -> None:
    env = {**run.env, "CHINWAG_STORE__URL": postgres_url}
    key = new_key(Runner(env), "alice", "--rpm", "10")
    with chinwag_serve(env, "--workers", "2") as (base, _):

        def one(i: int) -> int:
            with httpx.Client() as client:  # a connection each, so both workers take some
                body = {"model": "default", "messages": [{"role": "user", "content": f"q{i}"}]}
                return client.post(
                    f"{base}/v1/chat/completions", json=body, headers=auth(key), timeout=60
                ).status_code

        while time.time() % 60 > 40:  # all 50 inside one minute's window
            time.sleep(0.5)
        with ThreadPoolExecutor(50) as pool:
            codes = list(pool.map(one, range(50)))
    assert codes.count(200) == 10, codes
    assert codes.count(429) == 40
