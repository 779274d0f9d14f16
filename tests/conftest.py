"""Shared fixtures: an isolated CHINWAG_HOME, the fake OpenAI server, SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chinwag import plugins
from chinwag.config import Config
from tests.fake_openai import FakeOpenAI, Script
from tests.postgres import PostgresMissing, postgres_server as start_postgres


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own CHINWAG_HOME and none of the caller's chinwag or OpenAI env."""
    for var in list(os.environ):
        if var.startswith(("CHINWAG_", "OPENAI_")):
            monkeypatch.delenv(var)
    root = tmp_path / "home"
    monkeypatch.setenv("CHINWAG_HOME", str(root))
    return root


@pytest.fixture(scope="session")
def _fake_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def server(_fake_server: FakeOpenAI) -> FakeOpenAI:
    """The fake OpenAI server, with no scripts queued and no requests recorded."""
    _fake_server.scripts.clear()
    _fake_server.requests.clear()
    _fake_server.request_headers.clear()
    _fake_server.disconnects = 0
    _fake_server.model_lists = 0
    _fake_server.searches.clear()
    _fake_server.search_results = []
    _fake_server.search_status = 200
    _fake_server.default = Script()
    return _fake_server


def make_config(server: FakeOpenAI, **values: Any) -> Config:
    settings: dict[str, Any] = {
        "providers.openai.base_url": server.base_url,
        "providers.openai.model": "test-model",
        "titles": False,  # title requests would interleave with the ones tests inspect
    }
    settings.update(values)
    return Config(settings)


@pytest.fixture
def config(server: FakeOpenAI) -> Config:
    return make_config(server)


@pytest.fixture
def library_env(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    """What a program that builds its clients with no arguments (the seeds' examples) finds:
    chinwag's defaults, with the fake server as the OpenAI-compatible provider."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("CHINWAG_MODEL", "test-model")
    monkeypatch.setenv("CHINWAG_PROVIDERS__OPENAI__MAX_RETRIES", "0")
    return server


# -- PostgreSQL: a throwaway cluster from the distribution's binaries ------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server on 127.0.0.1; its admin URL.

    CHINWAG_TEST_POSTGRES_URL points at an existing server instead. The test command
    (scripts/test) installs Debian's postgresql package when it is missing.
    """
    given = os.environ.get("CHINWAG_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    try:
        with start_postgres() as url:
            yield url
    except PostgresMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the test PostgreSQL server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.rsplit("/", 1)[0] + f"/{name}"
    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(postgres_server, autocommit=True) as conn,
    ):
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on a SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


# -- the chinwag command as a subprocess --------------------------------------------------


class Runner:
    """Runs chinwag with the test's home and the fake server."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "chinwag", *args],
            input=stdin if stdin is not None else "",
            capture_output=True, text=True, env=self.env, timeout=60,
        )  # fmt: skip


def chinwag_env(home: Path, server: FakeOpenAI, **more: str) -> dict[str, str]:
    """An environment for chinwag processes: this home, the fake provider, no retries,
    no titles (unless `more` says otherwise), none of the caller's chinwag or OpenAI env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHINWAG_"))}
    env.update(
        CHINWAG_HOME=str(home),
        OPENAI_BASE_URL=server.base_url,
        CHINWAG_MODEL="test-model",
        CHINWAG_TITLES="false",
        CHINWAG_PROVIDERS__OPENAI__MAX_RETRIES="0",
    )
    return {**env, **more}


@pytest.fixture
def run(server: FakeOpenAI, home: Path) -> Runner:
    return Runner(chinwag_env(home, server))


def default_sigint() -> None:
    """For a child that is sent Ctrl-C: a runner started in the background (nohup, `&`)
    hands its children SIGINT ignored, and the test would test that, not chinwag."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# -- plugins: distributions installed into a directory on the path ----------------------


class PluginSite:
    """A directory on sys.path, and on the `run` command's PYTHONPATH, to install into."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def install(
        self, dist: str, entry_points: dict[str, str], modules: dict[str, str] | None = None
    ) -> None:
        """A distribution naming `entry_points` (name = module) in the `chinwag` group, and
        the source of any modules it ships."""
        info = self.root / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[chinwag]\n{lines}")
        for name, source in (modules or {}).items():
            (self.root / f"{name}.py").write_text(source)
        importlib.invalidate_caches()
        plugins.reload()  # this process loaded its plugins already, perhaps


@pytest.fixture
def plugin_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Runner
) -> Iterator[PluginSite]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    run.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), run.env.get("PYTHONPATH")]))
    yield PluginSite(root)
    for name, module in list(sys.modules.items()):  # the next test's site has its own
        if str(getattr(module, "__file__", None) or "").startswith(str(root)):
            del sys.modules[name]
    plugins.reload()


@pytest.fixture
def echo_plugin(plugin_site: PluginSite) -> PluginSite:
    """The example plugin, tests/echo_plugin.py, installed as the distribution chinwag-echo."""
    plugin_site.install("chinwag-echo", {"echo": "tests.echo_plugin"})
    return plugin_site
