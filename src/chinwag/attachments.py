"""Files attached to a turn: read from paths or given as bytes, typed (UTF-8 text, or a PNG,
JPEG, GIF or WebP image), held to the `attachments.*` limits before anything is stored or
sent, and shown to the model: text in the prompt under its name, images as image parts
(OpenAI's content-part format)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chinwag import checks
from chinwag.counting import IMAGE_TOKENS, estimate_chars
from chinwag.errors import InputError
from chinwag.types import IMAGE_TYPES, Attachment

if TYPE_CHECKING:
    from chinwag.config import AttachmentSettings

# What `files=` takes: a path, bytes, or a (name, bytes) pair.
Given = str | os.PathLike[str] | bytes | tuple[str, bytes]

_IMAGES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
}
# Binary formats people attach by mistake, named with what to do instead.
_BINARY = (
    (b"%PDF-", "a PDF", " Attach its text instead (pdftotext makes it)."),
    (b"PK\x03\x04", "a ZIP archive (or an office document)", " Attach the files in it."),
    (b"\x1f\x8b", "gzip-compressed", " Attach it uncompressed."),
    (b"\x7fELF", "a program (ELF)", ""),
)
# Media types that are text though not text/*.
_TEXTUAL = ("json", "xml", "javascript", "yaml", "toml", "sql", "x-sh", "x-python", "svg")
_NAME_LIMIT = 255


@dataclass(frozen=True, slots=True)
class Upload:
    """A file read for a turn: what is stored about it, and its bytes."""

    info: Attachment
    data: bytes


def media_type(name: str, data: bytes) -> str:
    """What the bytes are: an image chinwag sends, or UTF-8 text; anything else is refused
    with what it seems to be and what to attach instead."""
    if not data:
        raise InputError(f"{name} is empty: there is nothing to attach.")
    image = _image(data)
    if image is not None:
        return image
    import mimetypes  # its table loads on first use, and only here

    guessed = mimetypes.guess_type(name, strict=False)[0]
    binary = next(((what, hint) for magic, what, hint in _BINARY if data.startswith(magic)), None)
    if binary is None and b"\x00" not in data:
        if guessed is None or _textual(guessed):
            checks.utf8(data, name)  # says which byte on which line is not UTF-8
            return guessed or "text/plain"
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:  # text named like something else (a .ts file is TypeScript, not video)
            return "text/plain"
    if binary is None and guessed in IMAGE_TYPES:
        raise InputError(
            f"{name} is named like an image ({guessed}), but it is not a PNG, JPEG, GIF or "
            "WebP image: it may be damaged, or another kind of file."
        )
    unknown = guessed in (None, "application/octet-stream")
    what, hint = binary or ("binary data of an unknown type" if unknown else guessed, "")
    if guessed is not None and guessed.startswith("image/") and binary is None:
        hint = " Convert it to PNG or JPEG."
    raise InputError(
        f"{name} is {what}, which chinwag cannot attach: attach UTF-8 text, or a PNG, JPEG, "
        f"GIF or WebP image.{hint}"
    )


def _image(data: bytes) -> str | None:
    """The image type the bytes start as, if any chinwag sends."""
    for magic, kind in _IMAGES:
        if data.startswith(magic):
            return kind
    return "image/webp" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else None


def _textual(kind: str) -> bool:
    return (
        kind.startswith("text/")
        or kind.endswith(("+xml", "+json"))
        or any(kind.split("/", 1)[-1].startswith(t) for t in _TEXTUAL)
    )


def upload(name: str, data: bytes, limits: AttachmentSettings) -> Upload:
    """Bytes checked against the limit for one file, and typed."""
    if len(data) > limits.max_bytes:
        raise _too_big(name, len(data), limits.max_bytes)
    kind = media_type(name, data)
    info = Attachment(
        name=name, media_type=kind, size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    return Upload(info, data)


def _too_big(name: str, size: int, limit: int) -> InputError:
    return InputError(
        f"{name} is {size:,} bytes, over the limit of {limit:,} for one file "
        f"(attachments.max_bytes): attach a smaller file, or raise the limit (chinwag config "
        "set attachments.max_bytes N)."
    )


def file_name(raw: str, what: str) -> str:
    """A file's name as shown and stored: its last path segment, printable."""
    name = checks.text(raw, what).replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or len(name) > _NAME_LIMIT or not name.isprintable():
        raise InputError(
            f"{what} must be a file name of 1 to {_NAME_LIMIT} printable characters, not "
            f"{raw!r:.60}."
        )
    return name


def _read(path: str | os.PathLike[str], limit: int) -> tuple[str, bytes]:
    """A file's name and bytes, refused above `limit` before it is read whole. Pipes and
    devices (`<(command)`, /dev/stdin) are read up to the limit."""
    shown = os.fspath(path)
    checks.text(shown, "A path in files")
    where = os.path.expanduser(shown)
    name = os.path.basename(where.rstrip("/")) or shown
    try:
        # Without a writer, opening a named pipe would wait for one for good, past Ctrl-C:
        # opened without waiting, it reads as empty instead. Reads then wait as usual.
        fd = os.open(where, os.O_RDONLY | os.O_NONBLOCK)
        os.set_blocking(fd, True)
        with open(fd, "rb") as file:
            before = os.fstat(file.fileno())
            regular = stat.S_ISREG(before.st_mode)
            if regular and before.st_size > limit:
                raise _too_big(shown, before.st_size, limit)
            data = file.read(limit + 1)
            after = os.fstat(file.fileno()) if regular else before
    except FileNotFoundError:
        raise InputError(f"No file {shown}: check the path.") from None
    except IsADirectoryError:
        raise InputError(f"{shown} is a folder: attach the files in it, one by one.") from None
    except PermissionError:
        raise InputError(f"Cannot read {shown}: permission denied.") from None
    except OSError as exc:
        raise InputError(f"Cannot read {shown}: {exc.strerror or exc}.") from None
    if len(data) > limit:
        raise _too_big(shown, len(data), limit)
    moved = (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns)
    if regular and (moved or len(data) != before.st_size):
        raise InputError(
            f"{shown} changed while chinwag read it: attach it again once it is written."
        )
    return name, data


def _one(item: Given, index: int, limits: AttachmentSettings) -> Upload:
    if isinstance(item, tuple):
        name, data = file_name(item[0], f"files[{index - 1}]'s name"), bytes(item[1])
    elif isinstance(item, bytes | bytearray | memoryview):
        name, data = "", bytes(item)
    else:
        name, data = _read(item, limits.max_bytes)
    if name:
        return upload(name, data, limits)
    found = upload(f"attachment-{index}", data, limits)  # named once its type is known
    named = f"attachment-{index}{_EXTENSIONS.get(found.info.media_type, '.txt')}"
    return Upload(found.info.model_copy(update={"name": named}), data)


def load_all(slots: Sequence[Sequence[Given]], limits: AttachmentSettings) -> list[list[Upload]]:
    """Read and type the files of each message of a turn (in a worker thread: it reads
    files and hashes them), held to the limits for one file, all files and their count."""
    count = sum(len(slot) for slot in slots)
    if count > limits.max_files:
        raise InputError(
            f"{count} files are attached, over the limit of {limits.max_files} a turn "
            "(attachments.max_files): attach fewer, or raise the limit (chinwag config set "
            "attachments.max_files N)."
        )
    out: list[list[Upload]] = []
    total = index = 0
    for slot in slots:
        found: list[Upload] = []
        for item in slot:
            index += 1
            done = _one(item, index, limits)
            total += done.info.size
            if total > limits.max_total:
                raise InputError(
                    f"The attached files come to more than {limits.max_total:,} bytes, the "
                    "limit for one turn (attachments.max_total): attach less, or raise the "
                    "limit (chinwag config set attachments.max_total N)."
                )
            found.append(done)
        out.append(found)
    return out


async def load(slots: Sequence[Sequence[Given]], limits: AttachmentSettings) -> list[list[Upload]]:
    """load_all, off the event loop."""
    import anyio.to_thread

    return await anyio.to_thread.run_sync(load_all, slots, limits)


# -- message parts --------------------------------------------------------------------------


def decode(text: Any, what: str) -> bytes:
    """Base64 (or a data: URL holding it) as bytes."""
    if not isinstance(text, str):
        raise InputError(f"{what} must be base64 text or a data: URL, not {text!r:.60}.")
    if text.startswith("data:"):
        head, comma, text = text.partition(",")
        if not comma or not head.endswith(";base64"):
            raise InputError(f"{what} must be a base64 data: URL (data:TYPE;base64,...).")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{what} is not valid base64.") from None


def from_part(part: Mapping[str, Any], what: str) -> Given:
    """The file an OpenAI content part carries: an image_url part's data: URL, or a file
    part's file_data and filename. Images on the web are not fetched."""
    kind = part.get("type")
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if isinstance(url, str) and not url.startswith("data:"):
            raise InputError(
                f"{what}: chinwag takes images as data: URLs (data:image/png;base64,...), "
                "and fetches none from the web: send the image's bytes."
            )
        return decode(url, f"{what}.image_url.url")
    file = part.get("file")
    if not isinstance(file, Mapping) or "file_data" not in file:
        raise InputError(f"{what}: a file part needs file.file_data (base64) and file.filename.")
    data = decode(file.get("file_data"), f"{what}.file.file_data")
    filename = file.get("filename")
    return data if filename is None else (file_name(filename, f"{what}.file.filename"), data)


# -- what the model sees --------------------------------------------------------------------


def content(
    text: str, files: Sequence[Attachment], data: Mapping[str, bytes], *, images: bool
) -> str | list[dict[str, Any]]:
    """A user message's content: each text file under its name, then the message's text
    (documents first and the question last, as models read best); images as image parts
    after the text, or, for a model that takes none, a note where they were."""
    if not files:
        return text
    blocks, parts = [], []
    for f in files:
        if not f.image:
            blocks.append(_block(f.name, data[f.sha256]))
        elif images:
            encoded = base64.b64encode(data[f.sha256]).decode("ascii")
            url = f"data:{f.media_type};base64,{encoded}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            blocks.append(_unseen(f))
    joined = "\n\n".join([*blocks, text] if text else blocks)
    return [{"type": "text", "text": joined}, *parts] if parts else joined


def _block(name: str, data: bytes) -> str:
    """A text file as the prompt holds it: its name, then its text fenced (the fence longer
    than any run of backticks inside, so the text cannot close it)."""
    body = data.decode("utf-8").removeprefix("\ufeff").rstrip("\n")
    longest = run = 0
    for char in body:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"File: {name}\n{fence}\n{body}\n{fence}"


def _unseen(f: Attachment) -> str:
    return f"(The image {f.name} was attached here; this model takes no images.)"


def tokens(files: Sequence[Attachment], *, images: bool) -> int:
    """The tokens files add to a message, estimated without reading them."""
    return sum(
        IMAGE_TOKENS
        if f.image and images
        else estimate_chars(len(_unseen(f)) if f.image else f.size + len(f.name) + 16)
        for f in files
    )


def needed(files: Sequence[Attachment], *, images: bool) -> set[str]:
    """The sha256 of the files whose bytes the model's messages need."""
    return {f.sha256 for f in files if images or not f.image}


def shown(files: Sequence[Attachment]) -> str:
    """Files as one line for people: names, types and sizes."""
    return ", ".join(f"{f.name} ({f.media_type}, {_size(f.size)})" for f in files)


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} bytes"
    return f"{n / 1000:.1f} kB" if n < 1_000_000 else f"{n / 1_000_000:.1f} MB"


__all__ = [
    "Given",
    "Upload",
    "content",
    "decode",
    "file_name",
    "from_part",
    "load",
    "load_all",
    "media_type",
    "needed",
    "shown",
    "tokens",
    "upload",
]
