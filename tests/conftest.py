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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chinwag import Client, plugins
from chinwag.config import Config
from chinwag.errors import ConflictError
from tests.fake_openai import FakeOpenAI, Script
from tests.postgres import PostgresMissing, postgres_server as start_postgres

# Images as attachments: a 1x1 PNG and a 1x1 GIF (binary, with NUL bytes, as images are).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c"
    "63f8cfc0f01f0005000201e5270ede0000000049454e44ae426082"
)
GIF = bytes.fromhex("47494638396101000100800000ffffff0000002c00000000010001000002024401003b")


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
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged embedded model, assembled once for the whole session."""
    from chinwag.providers import gguf

    return gguf.packaged_model(tmp_path_factory.mktemp("cache"))


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


# -- the seeds' adapters in two places: in-process, and against a chinwag server ------------


@dataclass
class Served:
    """A `chinwag serve` on 127.0.0.1 with keys required: its URL, its store, and an admin's
    client that makes each test a user and key of its own."""

    url: str
    home: Path  # its CHINWAG_HOME: config (bots/ files) and data
    store_url: str
    admin_key: str
    admin: Client

    def key_for(self, user: str) -> str:
        """A new key for `user`, made a user of the server first if they are not one."""
        with contextlib.suppress(ConflictError):
            self.admin.accounts.add_user(user)
        return self.admin.accounts.create_key(user).key

    def new_user(self) -> tuple[str, str]:
        """A user of the caller's own, and their key."""
        user = f"user-{uuid.uuid4().hex[:12]}"
        return user, self.key_for(user)

    def store(self) -> Client:
        """The server's store, read from its database file in this process (not over HTTP)."""
        return Client({"store.url": self.store_url, "server.url": None, "titles": False})

    def stored(self, user: str, conversation_id: str | None) -> list[tuple[str, str, str]]:
        """A conversation as the server's store holds it: role, text and status of each
        message."""
        assert conversation_id is not None
        with self.store() as store:
            history = store.conversations.history(conversation_id, user=user)
        return [(m.role, m.content, m.status) for m in history]


@pytest.fixture(scope="module")
def served(_fake_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for a test module (one per test would dominate the run), on the fake
    provider, as the `library_env` fixture sets up the library: each test reads only what
    its own user made."""
    from tests.server import chinwag_serve

    home = tmp_path_factory.mktemp("served")
    env = chinwag_env(
        home,
        _fake_server,
        CHINWAG_TITLES="auto",  # as the library's default
        CHINWAG_SEARCH__URL=_fake_server.base_url.removesuffix("/v1"),
        CHINWAG_SEARCH__ALLOW_PRIVATE="true",  # the fake search server is on loopback
    )
    with pytest.MonkeyPatch.context() as patch:  # the server's home, made ready in-process
        for var in list(os.environ):
            if var.startswith(("OPENAI_", "CHINWAG_")):
                patch.delenv(var)
        patch.setenv("CHINWAG_HOME", str(home))
        with Client() as local:
            store_url = local.config.store_url
            local.accounts.add_user("admin", admin=True)
            admin_key = local.accounts.create_key("admin").key  # from now on keys are required
    with chinwag_serve(env) as (url, _), Client(base_url=url, api_key=admin_key) as admin:
        yield Served(url, home, store_url, admin_key, admin)


@dataclass(frozen=True)
class Place:
    """Where a test's adapters run: in-process, or against `served` as a user of the test's
    own, whose key is in CHINWAG_API_KEY."""

    name: str
    served: Served | None = None
    user: str = "local"  # whose turns they are: the config's default user, or the key's
    key: str | None = None

    @property
    def remote(self) -> bool:
        return self.served is not None


@pytest.fixture(params=["in-process", "server"])
def place(
    request: pytest.FixtureRequest, library_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> Place:
    """Each test that takes it runs twice: with the library's defaults in this process, and
    with CHINWAG_URL and CHINWAG_API_KEY naming the module's server and a new user's key (all
    a program built with no arguments, as the seeds' examples are, needs to move)."""
    if request.param == "in-process":
        return Place("in-process")
    served: Served = request.getfixturevalue("served")
    user, key = served.new_user()
    monkeypatch.setenv("CHINWAG_URL", served.url)
    monkeypatch.setenv("CHINWAG_API_KEY", key)
    return Place("server", served, user, key)


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
