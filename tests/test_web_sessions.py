"""The web page's sessions over HTTP: the cookie acts as its key through the one
authentication dependency, sign-out and revocation end it on the server, and a
cookie-authenticated change needs this server's own origin and the session's CSRF token."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Runner
from tests.fake_openai import FakeOpenAI
from tests.server import chinwag_serve
from tests.test_server_accounts import auth, new_key


@pytest.fixture
def keyed(run: Runner) -> Iterator[tuple[str, str]]:
    key = new_key(run, "alice")
    with chinwag_serve(run.env) as (base, _):
        yield base, key


def sign_in(base: str, key: str, **headers: str) -> httpx.Response:
    signed = httpx.post(f"{base}/api/v1/session", headers={**auth(key), **headers})
    assert signed.status_code == 201, signed.text
    return signed


def test_a_session_acts_as_its_key_until_signed_out_or_revoked(
    keyed: tuple[str, str], run: Runner, server: FakeOpenAI
) -> None:
    base, key = keyed
    signed = sign_in(base, key)
    assert signed.json()["user"] == "alice"
    assert signed.json()["signed_in"] is True
    session = signed.cookies["chinwag_session"]
    csrf = signed.cookies["chinwag_csrf"]
    cookies = {"chinwag_session": session, "chinwag_csrf": csrf}
    page = {"origin": base, "x-csrf-token": csrf}
    with httpx.Client(base_url=f"{base}/api/v1", cookies=cookies) as browser:
        assert browser.get("/session").json() == {
            "user": "alice", "admin": False, "signed_in": True, "expires_at": None,
        }  # fmt: skip
        made = browser.post("/conversations", json={"title": "From the page"}, headers=page)
        assert made.status_code == 201
        with httpx.Client(base_url=f"{base}/api/v1", headers=auth(key)) as sdk:
            assert [c["title"] for c in sdk.get("/conversations").json()] == ["From the page"]
        # A session cannot buy another session; only a key signs in.
        assert browser.post("/session", headers=page).status_code == 400
        assert browser.delete("/session", headers=page).status_code == 204
        ended = browser.get("/conversations")
        assert ended.status_code == 401
        assert "sign in again" in ended.json()["error"]["message"]
    # Revoking the key ends every session signed in with it, at once.
    again = sign_in(base, key).cookies["chinwag_session"]
    assert httpx.get(f"{base}/api/v1/conversations", cookies={"chinwag_session": again}).is_success
    key_id = run("keys", "list").stdout.split()[0]
    assert run("keys", "revoke", key_id).returncode == 0
    revoked = httpx.get(f"{base}/api/v1/conversations", cookies={"chinwag_session": again})
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["error"]["message"]
    bogus = httpx.get(f"{base}/api/v1/conversations", cookies={"chinwag_session": "x" * 43})
    assert bogus.status_code == 401


def test_cookie_changes_need_our_origin_and_the_session_csrf_token(
    keyed: tuple[str, str],
) -> None:
    base, key = keyed
    first, second = sign_in(base, key), sign_in(base, key)
    session, csrf = first.cookies["chinwag_session"], first.cookies["chinwag_csrf"]
    assert csrf != second.cookies["chinwag_csrf"]  # bound to its session
    url = f"{base}/api/v1/conversations"
    jar = {"chinwag_session": session}
    refused = [
        {},  # no origin, no token
        {"x-csrf-token": csrf},  # no origin
        {"origin": base},  # no token
        {"origin": base, "x-csrf-token": second.cookies["chinwag_csrf"]},  # another session's
        {"origin": "http://evil.example", "x-csrf-token": csrf},
        {"referer": "http://evil.example/page", "x-csrf-token": csrf},
        {"origin": "null", "x-csrf-token": csrf},
    ]
    for headers in refused:
        got = httpx.post(url, json={}, cookies=jar, headers=headers)
        assert got.status_code == 403, (headers, got.text)
        assert got.json()["error"]["type"] == "permission_error"
    assert httpx.get(url, cookies=jar).json() == []  # nothing was made
    for headers in ({"origin": base}, {"referer": f"{base}/?c=1"}):
        made = httpx.post(url, json={}, cookies=jar, headers={**headers, "x-csrf-token": csrf})
        assert made.status_code == 201, made.text
    assert httpx.get(url, cookies=jar).status_code == 200  # reading needs no token
    # Keys in headers are not affected: no browser sends them by itself.
    assert httpx.post(url, json={}, headers={**auth(key), "origin": "http://x"}).status_code == 201


def test_the_cookie_is_secure_behind_a_tls_proxy_and_strict_always(
    keyed: tuple[str, str],
) -> None:
    base, key = keyed
    plain = sign_in(base, key).headers.get_list("set-cookie")
    proxied = sign_in(base, key, **{"x-forwarded-proto": "https"}).headers.get_list("set-cookie")
    for cookies, secure in ((plain, False), (proxied, True)):
        session = next(c for c in cookies if c.startswith("chinwag_session="))
        csrf = next(c for c in cookies if c.startswith("chinwag_csrf="))
        assert "HttpOnly" in session
        assert "HttpOnly" not in csrf
        for cookie in (session, csrf):
            assert "SameSite=strict" in cookie
            assert ("Secure" in cookie) is secure


def test_a_keyless_server_answers_only_requests_addressed_to_this_machine(run: Runner) -> None:
    # DNS rebinding: evil.example made to resolve to 127.0.0.1 lets its page call this
    # server from the owner's browser, with its own name in Host (and Origin).
    with chinwag_serve(run.env) as (base, _):
        port = base.rsplit(":", 1)[1]
        url = f"{base}/api/v1/conversations"
        assert httpx.post(url, json={"title": "mine"}).status_code == 201
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
            assert httpx.get(url, headers={"host": host}).status_code == 200, host
        rebound = {"host": f"evil.example:{port}", "origin": f"http://evil.example:{port}"}
        for method in ("GET", "POST"):
            refused = httpx.request(method, url, json={}, headers=rebound)
            assert refused.status_code == 401, method
            assert "addressed to this machine" in refused.json()["error"]["message"]
            assert "mine" not in refused.text
        page = httpx.get(f"{base}/", headers=rebound, follow_redirects=False)
        assert page.status_code in (303, 401)  # the page is not shown: sign in, or refused
        assert "mine" not in page.text
        assert httpx.get(f"{base}/api/v1/health", headers=rebound).status_code == 200
        assert len(httpx.get(url).json()) == 1  # the refused POST made nothing


def test_a_keyless_loopback_server_refuses_changes_from_other_sites(run: Runner) -> None:
    with chinwag_serve(run.env) as (base, _):
        url = f"{base}/api/v1/conversations"
        assert httpx.post(url, json={}).status_code == 201  # curl, scripts: as before
        assert httpx.post(url, json={}, headers={"origin": base}).status_code == 201
        evil = httpx.post(url, json={}, headers={"origin": "http://evil.example"})
        assert evil.status_code == 403
        assert httpx.get(url, headers={"origin": "http://evil.example"}).status_code == 200
        nothing = httpx.post(f"{base}/api/v1/session")
        assert nothing.status_code == 400
        assert "without signing in" in nothing.json()["error"]["message"]
        page = httpx.get(f"{base}/")
        assert page.status_code == 200
        assert "default-src 'none'" in page.headers["content-security-policy"]
