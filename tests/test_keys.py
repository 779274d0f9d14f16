"""Keys out of plain text: `chinwag keys set` stores a provider's key in the keyring or a
0600 file (never config.yaml), the provider finds it there, the environment still wins,
and no secret reaches `config show`, `--debug` output, logs or error messages."""

from __future__ import annotations

import json
import logging
import stat
import sys
from pathlib import Path

import pexpect
import pytest

from chinwag import AsyncClient, Config
from chinwag.errors import AuthenticationError
from tests.conftest import Runner, chinwag_env, default_sigint
from tests.fake_openai import FakeOpenAI, Script

pytestmark = pytest.mark.anyio

KEY = "sk-chinwag-test-7f3e9a1b2c4d"  # distinctive: grep every output for it
OTHER = "sk-from-the-environment-51ac0e"
URL_SECRET = "pw-in-the-url-93be1f"
HEADER_SECRET = "hdr-secret-0c2a77d4"


def _bearer(server: FakeOpenAI) -> str | None:
    return server.request_headers[-1].get("authorization")


def _keyring_env(run: Runner, tmp_path: Path) -> Runner:
    """A runner whose keyring is keyrings.alt's file backend, chosen as a user would."""
    return Runner(
        {
            **run.env,
            "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
            "XDG_DATA_HOME": str(tmp_path / "keyring-data"),
        }
    )


def test_a_key_set_without_a_keyring_goes_to_a_0600_file_and_is_used(
    run: Runner, server: FakeOpenAI, home: Path
) -> None:
    stored = run("keys", "set", "openai", stdin=KEY + "\n")
    assert stored.returncode == 0, stored.stderr
    secrets = home / "secrets.json"
    assert str(secrets) in stored.stdout
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert KEY not in stored.stdout + stored.stderr
    assert not (home / "config.yaml").exists() or KEY not in (home / "config.yaml").read_text()
    asked = run("hi")
    assert asked.returncode == 0, asked.stderr
    assert _bearer(server) == f"Bearer {KEY}"
    deleted = run("keys", "delete", "openai")
    assert "Deleted" in deleted.stdout
    assert KEY not in secrets.read_text()
    run("hi")
    assert _bearer(server) is None
    assert "No key is stored" in run("keys", "unset", "openai").stdout


def test_a_key_set_with_a_keyring_goes_there_and_the_environment_still_wins(
    run: Runner, server: FakeOpenAI, home: Path, tmp_path: Path
) -> None:
    keyed = _keyring_env(run, tmp_path)
    stored = keyed("keys", "set", "openai", stdin=KEY)
    assert stored.returncode == 0, stored.stderr
    assert "the system keyring (file PlaintextKeyring)" in stored.stdout
    assert KEY not in (home / "secrets.json").read_text()  # only that it is in the keyring
    assert keyed("hi").returncode == 0
    assert _bearer(server) == f"Bearer {KEY}"
    with_env = Runner({**keyed.env, "OPENAI_API_KEY": OTHER})
    assert with_env("hi").returncode == 0
    assert _bearer(server) == f"Bearer {OTHER}"
    again = with_env("keys", "set", "openai", stdin=KEY)
    assert "OPENAI_API_KEY" in again.stderr  # it says which one wins
    assert "Deleted" in keyed("keys", "delete", "openai").stdout
    keyed("hi")
    assert _bearer(server) is None


def test_a_stored_key_makes_openai_the_default_provider(home: Path, tmp_path: Path) -> None:
    from chinwag.keystore import Secrets, provider_key
    from chinwag.providers import choose_default

    env = {"CHINWAG_HOME": str(home)}
    assert choose_default(Config(env=env))[0] == "local"
    Secrets(home).set(provider_key("openai"), KEY)
    name, why = choose_default(Config(env=env))
    assert (name, why) == ("openai", "a key for openai is stored (chinwag keys set openai)")
    assert Config(env=env).provider_settings("openai").api_key is not None
    assert KEY not in json.dumps(Config(env=env).shown())


def test_keys_set_asks_without_echo_on_a_terminal(server: FakeOpenAI, home: Path) -> None:
    env = chinwag_env(home, server)
    child = pexpect.spawn(
        sys.executable, ["-m", "chinwag", "keys", "set", "openai"], env=env, encoding="utf-8",
        timeout=30, preexec_fn=default_sigint,
    )  # fmt: skip
    child.expect("API key for openai: ")
    child.sendline(KEY)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert KEY not in (child.before or "")
    assert "Stored the key for openai" in (child.before or "")


def test_keys_set_refuses_an_unknown_provider_and_an_empty_key(run: Runner) -> None:
    unknown = run("keys", "set", "nonesuch", stdin=KEY)
    assert unknown.returncode == 2
    assert "No provider 'nonesuch'" in unknown.stderr
    empty = run("keys", "set", "openai", stdin="\n")
    assert empty.returncode == 2
    assert "No key given" in empty.stderr


def test_no_secret_reaches_config_show_debug_output_logs_or_errors(
    run: Runner, server: FakeOpenAI, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host = server.base_url.split("://", 1)[1]
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(
        "providers:\n"
        "  openai:\n"
        f"    base_url: http://{host}\n"
        f"    headers: {{X-Api-Key: {HEADER_SECRET}}}\n"
        "  other:\n"
        f"    base_url: http://user:{URL_SECRET}@127.0.0.1:9/v1\n"
        "  third:\n"
        f"    base_url: http://127.0.0.1:9/v1?api_key={URL_SECRET}\n"
    )
    assert run("keys", "set", "openai", stdin=KEY).returncode == 0
    env = {k: v for k, v in run.env.items() if k != "OPENAI_BASE_URL"}  # the file's URL
    cli = Runner(env)
    outputs = [cli("config", "show"), cli("config", "get", "providers")]
    refused = f"Incorrect API key provided: {KEY}; header {HEADER_SECRET}"
    server.script(Script(status=401, error=refused), Script(status=401, error=refused))
    outputs += [cli("hi"), cli("--debug", "hi")]
    assert outputs[-2].returncode == outputs[-1].returncode == 1
    assert "401" in outputs[-2].stderr
    assert "Traceback" in outputs[-1].stderr
    server.script(Script(text="fine"))
    outputs.append(cli("--usage", "hi"))
    assert outputs[-1].stdout.strip() == "fine"
    assert server.request_headers[-1]["authorization"] == f"Bearer {KEY}"  # it was sent
    shown = "".join(o.stdout + o.stderr for o in outputs)
    for secret in (KEY, URL_SECRET, HEADER_SECRET):
        assert secret not in shown, secret
    assert "***" in outputs[0].stdout


async def test_no_secret_reaches_logs_or_errors_in_the_library(
    server: FakeOpenAI, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from chinwag.keystore import Secrets, provider_key

    Secrets(home).set(provider_key("openai"), KEY)
    host = server.base_url.split("://", 1)[1]
    config = Config(
        {
            "providers.openai.base_url": f"http://user:{URL_SECRET}@{host}",
            "providers.openai.headers": {"X-Api-Key": HEADER_SECRET},
            "providers.openai.model": "test-model",
            "titles": False,
        },
        env={"CHINWAG_HOME": str(home)},
    )
    refused = f"Incorrect API key provided: {KEY}; header {HEADER_SECRET}"
    server.script(Script(status=401, error=refused))
    caplog.set_level(logging.DEBUG)
    async with AsyncClient(config) as client:
        with pytest.raises(AuthenticationError) as failed:
            await client.ask("hi")
        assert (await client.ask("hi again")).text == "You said: hi again"
    # httpx sends the URL's user and password instead of the key (Basic auth).
    assert server.request_headers[-1]["authorization"].startswith("Basic ")
    assert "HTTP Request" in caplog.text  # httpx logged each request, its URL and all
    logged = caplog.text + str(failed.value) + str(failed.value.body)
    for secret in (KEY, URL_SECRET, HEADER_SECRET):
        assert secret not in logged, secret
