"""Layered config: defaults < file (and profile) < environment < code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from chinwag.config import Config
from chinwag.errors import ConfigError


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
