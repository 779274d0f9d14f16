"""A throwaway PostgreSQL cluster from the distribution's binaries, for tests and benchmarks."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PostgresMissing(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a cluster on 127.0.0.1 and yield its admin URL; removed afterwards."""
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    initdb = next((Path(d) / "initdb" for d in bindirs if (Path(d) / "initdb").exists()), None)
    if initdb is None and shutil.which("initdb"):
        initdb = Path(str(shutil.which("initdb")))
    if initdb is None:
        raise PostgresMissing(
            "PostgreSQL is not installed: run scripts/test (it installs Debian's postgresql), "
            "or set CHINWAG_TEST_POSTGRES_URL to a server's URL."
        )
    bindir = initdb.parent
    root = Path(tempfile.mkdtemp(prefix="chinwag-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "chinwag", "--auth=trust",
         "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = _free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    options += " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options,
         "-l", str(root / "log"), "-w", "-t", "60", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql://chinwag@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
