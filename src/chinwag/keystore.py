"""Keys kept out of plain-text config: in the system keyring (service "chinwag") when a
usable one exists, else in `secrets.json` in the config dir, readable by its owner alone.

The file also says which names are in the keyring, so that a lookup for a name nobody
stored costs one stat and never imports keyring (0.15 s). A server's key may also have
been put in the keyring by hand (`keyring set chinwag URL`): `get(..., keyring=True)`
asks it even when the file does not list the name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

SERVICE = "chinwag"
FILE = "secrets.json"
MASK = "***"

log = logging.getLogger("chinwag.secrets")


# Names of settings, headers and URL query parameters whose values are secrets.
_SECRET_WORDS = frozenset(
    ["key", "apikey", "token", "secret", "password", "passwd", "pwd", "auth", "authorization",
     "cookie", "credential", "credentials", "signature", "sig"]
)  # fmt: skip
# Header names are matched more widely (X-Auth-Token, X-Goog-Api-Key, Set-Cookie...).
_SECRET_HEADER_PARTS = ("authorization", "api-key", "api_key", "apikey", "cookie", "token",
                        "secret", "password")  # fmt: skip


def secret_name(name: str, *, header: bool = False) -> bool:
    lowered = name.lower()
    if header and any(part in lowered for part in _SECRET_HEADER_PARTS):
        return True
    return bool(_SECRET_WORDS.intersection(re.split(r"[^a-z0-9]+", lowered)))


def secret_header(name: str) -> bool:
    """Whether a header of this name carries a credential (Authorization, X-Api-Key...)."""
    return secret_name(name, header=True)


def mask_url(text: str) -> str:
    """A URL with its password and secret query parameters masked; other text as it is."""
    if "://" not in text:
        return text
    from urllib.parse import urlsplit, urlunsplit

    try:
        url = urlsplit(text)
    except ValueError:
        return text
    netloc = url.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    query = re.sub(
        r"(?:^|(?<=[&;]))([^=&;]+)=([^&;]*)",
        lambda m: f"{m[1]}={MASK}" if m[2] and secret_name(m[1]) else m[0],
        url.query,
    )
    if (netloc, query) == (url.netloc, url.query):
        return text
    return urlunsplit(url._replace(netloc=netloc, query=query))


def write_private(path: Path, text: str, *, secret: bool) -> None:
    """Replace a file atomically; readable by its owner only if it holds a secret.

    A file's mode is kept otherwise, so a file that is already 0600 is never loosened.
    """
    import tempfile

    target = path.resolve()  # a symlinked config file stays a symlink
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    if secret:
        mode &= 0o600
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def provider_key(provider: str) -> str:
    """The name a provider's API key is kept under: the config key it stands for."""
    return f"providers.{provider}.api_key"


class Secrets:
    """The keys stored for one config dir."""

    def __init__(self, config_dir: Path) -> None:
        self.file = config_dir / FILE

    def get(self, name: str, *, keyring: bool = False) -> str | None:
        """The secret stored under `name`, or None; `keyring` asks the keyring even for a
        name the file does not list (a key stored there by hand)."""
        entry = self._read().get(name)
        if isinstance(entry, dict) and isinstance(entry.get("value"), str):
            return remember(entry["value"])
        if (isinstance(entry, dict) and entry.get("in") == "keyring") or keyring:
            backend = _keyring(any_backend=keyring)
            if backend is not None:
                try:
                    found = backend.get_password(SERVICE, name)
                except Exception as exc:  # a locked or broken keyring: the key is elsewhere
                    log.warning("the keyring could not be read: %s", type(exc).__name__)
                    return None
                return remember(found) if found else None
        return None

    def set(self, name: str, value: str) -> str:
        """Store the secret; where it went, in words."""
        remember(value)
        data = self._read()
        backend = _keyring()
        if backend is not None:
            try:
                backend.set_password(SERVICE, name, value)
            except Exception as exc:  # falls back to the file, and says so
                log.warning("the keyring refused the key: %s", type(exc).__name__)
            else:
                data[name] = {"in": "keyring"}
                self._write(data)
                return f"the system keyring ({backend.name})"
        data[name] = {"value": value}
        self._write(data)
        return f"{self.file} (readable by you only)"

    def delete(self, name: str) -> bool:
        """Forget the secret, wherever it is; False if none was stored."""
        data = self._read()
        entry = data.pop(name, None)
        if isinstance(entry, dict) and entry.get("in") == "keyring":
            backend = _keyring()
            if backend is not None:
                with contextlib.suppress(Exception):  # already gone is gone
                    backend.delete_password(SERVICE, name)
        if entry is not None:
            self._write(data)
        return entry is not None

    def _read(self) -> dict[str, Any]:
        try:
            text = self.file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("cannot read %s: %s", self.file, exc.strerror)
            return {}
        try:
            data = json.loads(text)
        except ValueError:
            log.warning("%s is not JSON: its keys are ignored", self.file)
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        write_private(self.file, json.dumps(data, indent=2) + "\n", secret=True)
        os.chmod(self.file.resolve(), 0o600)  # whatever its mode was: the owner's alone


def _keyring(*, any_backend: bool = False) -> Any:
    """The keyring backend to use, or None: one chosen by the user (PYTHON_KEYRING_BACKEND
    or keyringrc.cfg), or a system keyring that keyring found (priority 1 and up).
    A low-priority file backend (keyrings.alt's plain text) is not used unless chosen,
    or unless `any_backend` (reading a key stored there by hand)."""
    try:
        import keyring
        from keyring.backends import chainer, fail
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:
        return None
    if isinstance(backend, fail.Keyring) or backend.priority < 0:
        return None
    chosen = bool(os.environ.get("PYTHON_KEYRING_BACKEND")) or _has_keyringrc()
    if chosen or any_backend:
        return backend
    chained = backend.backends if isinstance(backend, chainer.ChainerBackend) else [backend]
    best = chained[0] if chained else backend
    if getattr(best, "priority", 0) < 1:
        return None
    return backend


def _has_keyringrc() -> bool:
    try:
        from keyring.util import platform_
    except ImportError:
        return False
    return (Path(platform_.config_root()) / "keyringrc.cfg").is_file()


# Every secret this process has read or stored: masked wherever it would be shown.
_known: set[str] = set()


def remember(secret: str) -> str:
    """Note a secret's value so that masking hides it in logs and messages; returns it."""
    if len(secret) >= 8:  # shorter strings are too common in text to hide everywhere
        _known.add(secret)
    return secret


_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{6,}")


def mask(text: str) -> str:
    """Text with every secret hidden: known keys, credentials after Bearer/Basic, and
    URL passwords and secret query parameters."""
    for secret in _known:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _BEARER.sub(lambda m: f"{m[1]} {MASK}", text)
    if "://" in text:
        text = re.sub(r"\w+://[^\s'\"<>]+", lambda m: mask_url(m[0]), text)
    return text


class MaskSecrets(logging.Filter):
    """A logging filter that masks secrets in each record's message, as shown."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_FILTER = MaskSecrets()
# Loggers whose records may carry a URL or a header: httpx logs each request's URL.
_LOGGERS = ("chinwag", "httpx", "httpcore", "uvicorn", "uvicorn.access", "uvicorn.error")


def mask_logs() -> None:
    """Mask secrets in what chinwag and the HTTP libraries under it log (idempotent)."""
    names = [*_LOGGERS, *(n for n in logging.root.manager.loggerDict if n.startswith("chinwag."))]
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


__all__ = [
    "MASK", "SERVICE", "MaskSecrets", "Secrets", "mask", "mask_logs", "mask_url", "provider_key",
    "remember", "secret_header", "secret_name", "write_private",
]  # fmt: skip
