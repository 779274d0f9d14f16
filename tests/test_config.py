"""Layered config: defaults < file (and profile) < environment < code."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st
from pydantic import SecretStr

from chinwag import Client
from chinwag.config import Config
from chinwag.errors import ConfigError
from tests.conftest import make_config
from tests.fake_openai import FakeOpenAI


def _write(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(text)


def test_defaults_without_a_file() -> None:
    config = Config()
    assert config.get("bot") == "default"
    assert config.get("providers.openai.base_url") == "https://api.openai.com/v1"
    assert config.get("store.url") is None


def test_layers_override_in_order(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(home, "model: from-file\nuser: file-user\nstore:\n  echo: true\n")
    assert Config().get("model") == "from-file"
    monkeypatch.setenv("CHINWAG_MODEL", "from-env")
    config = Config()
    assert config.get("model") == "from-env"
    assert config.get("user") == "file-user"  # the file still counts where env is silent
    assert config.get("store.echo") is True
    assert Config({"model": "from-code"}).get("model") == "from-code"


def test_nested_env_keys_and_the_usual_openai_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHINWAG_PROVIDERS__OPENAI__TIMEOUT", "12.5")
    monkeypatch.setenv("CHINWAG_STORE__URL", "sqlite:///x.db")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("CHINWAG_TEST_SOMETHING_ELSE", "ignored")  # not a chinwag key
    config = Config()
    assert config.get("providers.openai.timeout") == 12.5
    assert config.get("store.url") == "sqlite:///x.db"
    assert config.get("providers.openai.base_url") == "http://127.0.0.1:9/v1"
    key = config.get("providers.openai.api_key")
    assert isinstance(key, SecretStr)
    assert key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(config.settings)


def test_home_moves_every_file(home: Path) -> None:
    config = Config()
    assert config.file == home / "config.yaml"
    assert config.paths.database == home / "chinwag.db"


def test_set_and_get_dotted_keys() -> None:
    config = Config()
    config.set("providers.local.type", "openai")
    config.set("providers.local.base_url", "http://127.0.0.1:8080/v1")
    config.set("models.tiny.context_window", 512)
    assert config.get("providers.local.base_url") == "http://127.0.0.1:8080/v1"
    assert config.context_window("tiny") == 512
    assert config.context_window("other") == 8192
    assert "models.tiny.context_window" in config.keys()  # noqa: SIM118 - keys() is the API under test


def test_a_bad_value_names_key_value_and_expectation() -> None:
    config = Config()
    with pytest.raises(ConfigError) as caught:
        config.set("providers.openai.timeout", "soon")
    message = str(caught.value)
    assert "providers.openai.timeout" in message
    assert "'soon'" in message
    assert "number" in message
    assert caught.value.key == "providers.openai.timeout"
    # The failed set left the config as it was.
    assert config.get("providers.openai.timeout") == 600.0


def test_a_bad_env_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHINWAG_CONTEXT_WINDOW", "-5")
    with pytest.raises(ConfigError, match=r"context_window = '-5' \(set in the environment "):
        Config()


def test_unknown_keys_are_refused_with_their_source(home: Path) -> None:
    _write(home, "stor:\n  url: x\n")
    with pytest.raises(ConfigError, match=r"stor is not a chinwag setting \(set in .*config.yaml"):
        Config()
    _write(home, "model: fine\n")
    with pytest.raises(ConfigError, match=r"Unknown config key 'nope\.deeper'"):
        Config().get("nope.deeper")
    assert Config().get("nope", None) is None


def test_broken_yaml_names_the_file(home: Path) -> None:
    _write(home, "model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"config\.yaml"):
        Config()


def test_profiles_overlay_the_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(home, "model: base\nprofiles:\n  work:\n    model: work-model\n    user: me\n")
    assert Config().get("model") == "base"
    assert Config(profile="work").get("model") == "work-model"
    monkeypatch.setenv("CHINWAG_PROFILE", "work")
    assert Config().get("user") == "me"
    with pytest.raises(ConfigError, match=r"Unknown profile 'play'.*work"):
        Config(profile="play")


def test_api_keys_are_hidden_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        Config({"providers.openai.api_key": ["sk-very-secret"]})
    assert "sk-very-secret" not in str(caught.value)


_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)  # fmt: skip
_keys = st.sampled_from(
    ["model", "bot", "context_window", "store.url", "store.echo", "providers.openai.timeout",
     "providers.openai.max_retries", "models.m.context_window", "providers.openai.headers"]
)  # fmt: skip


@given(key=_keys, value=_values)
def test_set_accepts_or_explains_any_value(key: str, value: Any) -> None:
    config = Config(env={})
    error: ConfigError | None = None
    try:
        config.set(key, value)
    except ConfigError as exc:
        error = exc
    if error is None:
        config.get(key)
    else:
        assert key.split(".")[0] in str(error)


def test_configuring_one_provider_keeps_the_defaults_of_the_others() -> None:
    config = Config({"providers.local.n_ctx": 1024, "providers.openai.timeout": 5})
    assert config.get("providers.local.type") == "local"
    assert config.get("providers.local.n_ctx") == 1024
    assert config.get("providers.openai.model") == "gpt-4o-mini"
    assert config.get("providers.openai.base_url") == "https://api.openai.com/v1"


@pytest.mark.parametrize(
    ("profiles", "why"),
    [
        ("{work: 5}", "The profile 'work' in .*config.yaml must be a mapping of settings, not int"),
        ("[work]", "'profiles' in .*config.yaml must map profile names to settings, not list"),
    ],
)
def test_a_profile_that_is_not_a_mapping_names_itself_and_the_file(
    home: Path, profiles: str, why: str
) -> None:
    _write(home, f"profiles: {profiles}\n")
    with pytest.raises(ConfigError, match=why):
        Config(profile="work")


def test_a_quoted_segment_holds_a_model_name_with_dots(home: Path) -> None:
    config = Config()
    key = Config.key("models", "gpt-4.1", "system_prompt")
    assert key == 'models."gpt-4.1".system_prompt'
    config.set(key, "Be brief.")
    config.set('models."llama3.2".context_window', 2048)
    assert config.get('models."gpt-4.1".system_prompt') == "Be brief."
    assert config.get_shown(key) == "Be brief."
    assert config.context_window("llama3.2") == 2048
    assert key in config.keys()  # noqa: SIM118 - keys() is the API under test
    config.save(key, "Saved.")
    assert Config().settings.models["gpt-4.1"].system_prompt == "Saved."
    # The environment splits levels at `__` only, so a level may hold dots too.
    env = {"CHINWAG_HOME": str(home), "CHINWAG_MODELS__GPT-4.1__CONTEXT_WINDOW": "512"}
    assert Config(env=env).context_window("gpt-4.1") == 512
    with pytest.raises(ConfigError, match=r'double quotes: models\."gpt-4\.1"'):
        config.get("models.gpt-4.1.system_prompt")


@pytest.mark.parametrize("key", ['models."gpt-4.1.system_prompt', 'models.gpt"4.x', "a..b", ""])
def test_a_malformed_key_is_a_config_error(key: str) -> None:
    with pytest.raises(ConfigError, match="Invalid config key"):
        Config().set(key, 1)


def test_secret_headers_and_credentials_in_urls_are_masked() -> None:
    config = Config(
        {
            "providers.openai.headers": {
                "Authorization": "Bearer sk-auth",
                "X-Api-Key": "sk-xapi",
                "Cookie": "session=sk-cookie",
                "X-Auth-Token": "sk-token",
                "X-Trace": "visible",
            },
            "providers.openai.base_url": "https://user:sk-userinfo@api.example/v1?key=sk-q&x=1",
            "store.url": "postgresql+psycopg://chinwag:sk-db@db.example/chinwag",
            "search.url": "https://searx.example/search?api_key=sk-search&token=sk-t2",
        }
    )
    shown = json.dumps(config.shown())
    assert "sk-" not in shown
    headers = config.get_shown("providers.openai.headers")
    assert headers["Authorization"] == "***"
    assert headers["X-Trace"] == "visible"
    assert config.get_shown("providers.openai.base_url") == (
        "https://user:***@api.example/v1?key=***&x=1"
    )
    assert config.get_shown("store.url") == "postgresql+psycopg://chinwag:***@db.example/chinwag"
    assert "sk-" not in config.get_shown("search.url")
    # The values themselves are intact for the code that uses them.
    assert config.get("store.url").endswith("chinwag:sk-db@db.example/chinwag")


def test_a_secret_header_is_hidden_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        Config({"providers.openai.headers": {"Authorization": ["Bearer sk-very-secret"]}})
    assert "sk-very-secret" not in str(caught.value)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("providers.openai.api_key", "sk-key"),
        ("providers.openai.headers", {"Authorization": "Bearer sk-key"}),
        ("store.url", "postgresql://chinwag:sk-key@db.example/chinwag"),
    ],
)
def test_save_writes_a_file_with_a_secret_for_its_owner_only(
    home: Path, key: str, value: Any
) -> None:
    _write(home, "user: me\n")
    (home / "config.yaml").chmod(0o644)
    Config().save(key, value)
    assert _mode(home / "config.yaml") == 0o600
    assert "sk-key" in (home / "config.yaml").read_text()
    assert [p.name for p in home.iterdir()] == ["config.yaml"]  # no temporary file is left


def test_save_keeps_a_files_mode_and_never_loosens_it(home: Path) -> None:
    config = Config()
    config.save("user", "me")
    umask = os.umask(0)
    os.umask(umask)
    assert _mode(home / "config.yaml") == 0o666 & ~umask  # nothing secret: the usual mode
    (home / "config.yaml").chmod(0o600)
    config.save("model", "m")
    assert _mode(home / "config.yaml") == 0o600
    assert Config().get("user") == "me"


def test_save_writes_through_a_symlinked_config_file(home: Path, tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "chinwag.yaml"
    real.parent.mkdir()
    real.write_text("user: me\n")
    home.mkdir()
    (home / "config.yaml").symlink_to(real)
    Config().save("model", "m")
    assert (home / "config.yaml").is_symlink()
    assert "model: m" in real.read_text()


def test_a_yaml_error_is_one_line_with_the_file_and_line(home: Path) -> None:
    _write(home, "user: me\nmodel: [unclosed\nbot: x\n")
    with pytest.raises(ConfigError) as caught:
        Config()
    message = str(caught.value)
    assert "\n" not in message
    assert str(home / "config.yaml") in message
    assert "line 3" in message


def test_a_config_file_that_is_not_utf8_names_itself(home: Path) -> None:
    home.mkdir()
    (home / "config.yaml").write_bytes(b"user: me\nmodel: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"config\.yaml is not UTF-8 text \(byte 0xe9 on line 2"):
        Config()


def test_set_system_prompt_for_a_model_name_with_dots(server: FakeOpenAI) -> None:
    with Client(make_config(server, model="gpt-4.1")) as client:
        client.set_system_prompt("gpt-4.1", "Be brief.")
        client.ask("hi")
        assert client.config.get('models."gpt-4.1".system_prompt') == "Be brief."
    request = server.requests[-1]
    assert request["model"] == "gpt-4.1"
    assert request["messages"][0] == {"role": "system", "content": "Be brief."}


def test_a_setting_changed_in_code_takes_effect_on_the_next_turn(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    config = make_config(server)
    with Client(config) as client:
        client.ask("first")
        assert server.requests[-1]["model"] == "test-model"
        # The provider was made already; a change to it is not ignored.
        config.set("providers.openai.model", "other-model")
        client.ask("second")
        assert server.requests[-1]["model"] == "other-model"
        config.set("system_prompt", "Be terse.")
        client.ask("third")
        assert server.requests[-1]["messages"][0]["content"] == "Be terse."
        # Another database: the next turn is stored there.
        config.set("store.url", f"sqlite:///{tmp_path / 'other.db'}")
        client.ask("fourth")
        assert [c.title for c in client.conversations.list()] == [None]
        assert (tmp_path / "other.db").exists()
