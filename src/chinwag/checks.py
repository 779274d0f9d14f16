"""Checks of what callers pass at the public boundary: one clear InputError, never a raw
TypeError, UnicodeEncodeError or database error from deep inside."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chinwag.errors import ChinwagError, InputError

if TYPE_CHECKING:
    from pydantic import ValidationError

MAX_USER_NAME = 200  # the users table's column


def text(value: Any, what: str) -> str:
    """A string that can be stored and sent: no lone surrogates (invalid UTF-16 halves)."""
    if not isinstance(value, str):
        raise InputError(f"{what} must be text (str), not {type(value).__name__}: {value!r:.60}.")
    nul = value.find("\x00")
    if nul >= 0:
        raise InputError(
            f"{what} holds a NUL character (\\x00) at position {nul}, which cannot be stored: "
            "remove it."
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"{what} holds an invalid character at position {exc.start} (a lone surrogate, "
            f"{value[exc.start]!r}): it cannot be stored or sent. Remove it, or decode the "
            "text with errors='replace'."
        ) from None
    return value


def problem(exc: ValidationError, *, value: bool = False, prefix: str = "") -> str:
    """A pydantic ValidationError as one line: its first problem, where, and (with `value`)
    the value given, e.g. `params.temperature = 3: Input should be less than or equal to 2.`"""
    err = exc.errors()[0]
    where = prefix + ".".join(str(p) for p in err["loc"])
    given = f" = {err.get('input')!r:.60}" if value else ""
    return f"{where}{given}: {err['msg']}."


def utf8(raw: bytes, where: str, error: type[ChinwagError] = InputError) -> str:
    """A file's bytes as text, or one line naming the file and the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(
            f"{where} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}): "
            "save it as UTF-8."
        ) from None


def optional_text(value: Any, what: str) -> str | None:
    return None if value is None else text(value, what)


def identifier(value: Any, what: str) -> str:
    """An id such as a conversation's or a message's: a string."""
    if not isinstance(value, str):
        raise InputError(
            f"{what} must be an id string, not {type(value).__name__}: {value!r:.60}. "
            "`conversations.list()` shows the ids."
        )
    return text(value, what)


def count(value: Any, what: str, maximum: int = 1_000_000) -> int:
    """A whole number from 0 to `maximum` (a limit, an offset)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise InputError(f"{what} must be a whole number from 0 to {maximum:,}, not {value!r:.60}.")
    return value


MAX_DOLLARS = 10**9  # a budget above a billion US dollars is a typo, not a budget


def dollars(value: Any, what: str) -> int:
    """An amount of US dollars (a number, or its text) as whole micro-dollars, rounded to
    the nearest: more than 0, at most MAX_DOLLARS. Decimal, so 0.1 is 100,000 exactly."""
    from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise InputError(f"{what} must be an amount of US dollars, like 5 or 0.25, not "
                         f"{type(value).__name__}: {value!r:.60}.")  # fmt: skip
    try:  # a float by its shortest repr: 0.1 is "0.1", not 0.1000000000000000055...
        amount = (
            Decimal(value.strip().removeprefix("$")) if isinstance(value, str)
            else value if isinstance(value, Decimal) else Decimal(repr(value))
        )  # fmt: skip
    except (InvalidOperation, ValueError):
        amount = Decimal("NaN")
    if not amount.is_finite() or not 0 < amount <= MAX_DOLLARS:
        raise InputError(f"{what} must be an amount of US dollars above 0 and at most "
                         f"{MAX_DOLLARS:,}, like 5 or 0.25, not {value!r:.60}.")  # fmt: skip
    micro = int((amount * 1_000_000).quantize(Decimal(1), ROUND_HALF_UP))
    if micro == 0:
        raise InputError(
            f"{what} must be at least $0.000001 (one micro-dollar), not {value!r:.60}."
        )
    return micro


def user(value: Any) -> str | None:
    """A user as a name: `42` and `"42"` are one user; whitespace around it is ignored."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InputError(
            f"user must be a name (str) or a number (int), not {type(value).__name__}: "
            f"{value!r:.60}."
        )
    name = text(str(value), "user").strip()
    if not name:
        raise InputError("user is empty: pass a user name or id, or leave it out.")
    if len(name) > MAX_USER_NAME or not name.isprintable():
        raise InputError(
            f"user must be at most {MAX_USER_NAME} printable characters, not {name!r:.60}."
        )
    return name


MAX_INT = 2**63 - 1  # what the databases' integer columns hold


def storable(data: Any, what: str = "it") -> None:
    """Check that JSON-like data can be stored and sent: every text storable (`text`), every
    number finite and within the database's range. Iterative, so nesting depth costs no
    recursion."""
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            text(item, f"A text in {what}")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if abs(item) > MAX_INT:
                raise InputError(f"A number of {len(str(abs(item)))} digits is too large to store.")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InputError(
                    f"A number in {what} is {item}, which JSON cannot carry: give a finite one."
                )
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def messages(value: Any) -> Sequence[Mapping[str, Any]]:
    """A chat message list: a list of {'role': ..., 'content': ...} mappings."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InputError(
            "messages must be a list of {'role': ..., 'content': ...} dicts, not "
            f"{type(value).__name__}: {value!r:.60}. For a single prompt, use ask()."
        )
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise InputError(
                f"messages[{i}] must be a dict like {{'role': 'user', 'content': 'Hi'}}, "
                f"not {type(item).__name__}: {item!r:.60}."
            )
    return value


def flag(value: Any, what: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise InputError(f"{what} must be True, False or None, not {value!r:.60}.")
    return value


def _tools(value: Any, what: str) -> Any:
    if value is not None and (isinstance(value, str) or not isinstance(value, Sequence)):
        raise InputError(f"{what} must be a list of functions, not {value!r:.60}.")
    return value


def files(value: Any, what: str = "files") -> tuple[Any, ...] | None:
    """Files to attach: a list of paths (str or os.PathLike), bytes, or (name, bytes) pairs.
    Nothing is read here."""
    if value is None:
        return None
    if isinstance(value, str | bytes | os.PathLike) or not isinstance(value, Sequence):
        raise InputError(
            f"{what} must be a list of paths or bytes, as in {what}=['notes.txt'], not "
            f"{type(value).__name__}: {value!r:.60}."
        )
    out: list[Any] = []
    for i, item in enumerate(value):
        if isinstance(item, bytearray | memoryview):
            item = bytes(item)
        pair = (
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], bytes | bytearray)
        )
        if not (pair or isinstance(item, str | bytes | os.PathLike)):
            raise InputError(
                f"{what}[{i}] must be a path (str or pathlib.Path), bytes, or a (name, bytes) "
                f"pair, not {type(item).__name__}: {item!r:.60}."
            )
        out.append(item)
    return tuple(out)


def key(value: Any, what: str) -> str:
    """A name, slug or uid to look something up by."""
    if not isinstance(value, str):
        raise InputError(f"{what} must be a name, slug or uid (str), not {value!r:.60}.")
    return text(value, what)


def _bot(value: Any, what: str) -> Any:
    from chinwag.types import Bot

    if value is not None and not isinstance(value, Bot):
        return key(value, what)
    return value


def bot(value: Any, what: str = "bot") -> Any:
    """A bot given by uid, slug or name, or as a Bot; None for the default."""
    return _bot(value, what)


def _schemas(value: Any, what: str) -> Any:
    if value is not None and (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or not all(isinstance(t, Mapping) for t in value)
    ):
        raise InputError(
            f"{what} must be a list of OpenAI tool schemas (dicts), not {value!r:.60}."
        )
    if value is not None:
        storable([dict(t) for t in value], what)  # they are sent as JSON
    return value


def _choice(value: Any, what: str) -> Any:
    if value is not None and not isinstance(value, str | Mapping):
        raise InputError(f"{what} must be 'auto', 'none', 'required' or a dict, not {value!r:.60}.")
    storable(dict(value) if isinstance(value, Mapping) else value, what)
    return value


def _hook(value: Any, what: str) -> Any:
    if value is not None and not callable(value):
        raise InputError(f"{what} must be an async function, not {type(value).__name__}.")
    return value


def name(value: Any, what: str) -> str:
    """A non-empty name, such as a provider's or a model's."""
    if not key(value, what).strip():
        raise InputError(f"{what} is empty: name one, or leave it out.")
    return str(value)


def optional_name(value: Any, what: str) -> str | None:
    return None if value is None else name(value, what)


def model_prompts(value: Any, what: str = "prompts") -> dict[str, str | None]:
    """System prompts by model name (None: the model has none of its own)."""
    if not isinstance(value, Mapping):
        raise InputError(f"{what} must map model names to prompts, not {value!r:.60}.")
    return {
        name(model, f"{what}: a model"): optional_text(prompt, f"{what}[{model!r}]")
        for model, prompt in value.items()
    }


# Each turn option that is not a sampling setting (GenerationParams validates those).
def _short(value: Any, what: str, limit: int = 256) -> str:
    found = text(value, what)
    if len(found) > limit:
        raise InputError(f"{what} must be at most {limit} characters, not {len(found):,}.")
    return found


_OPTION_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "bot": _bot,
    "provider": optional_name,
    "model": optional_name,
    "model_prompts": lambda v, w: None if v is None else model_prompts(v, w),
    "conversation": lambda v, w: None if v is None else identifier(v, w),
    "files": files,
    "system": optional_text,
    "language": optional_text,
    "end_user": lambda v, w: None if v is None else _short(v, w),
    "search": flag,
    "tools": _tools,
    "tool_schemas": _schemas,
    "tool_choice": _choice,
    "admit": _hook,
}


def known_keys(given: Mapping[str, Any], known: Iterable[str], what: str, hint: str = "") -> None:
    """Refuse keys a call does not know (a typo must not be ignored), naming the known ones."""
    known = sorted(known)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InputError(
            f"{what}: chinwag does not know {unknown}; it takes {', '.join(known)}{hint}."
        )


def sampling(values: Mapping[str, Any], what: str = "") -> dict[str, Any]:
    """Sampling settings (temperature, max_tokens...) checked as a turn checks them, for
    callers that take them before the turn (the seeds' adapters)."""
    from pydantic import ValidationError

    from chinwag.types import GenerationParams

    try:
        GenerationParams.model_validate(values)
    except ValidationError as exc:
        raise InputError(f"Invalid {problem(exc, value=True, prefix=what)}") from None
    return dict(values)


def turn_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ask, stream and chat, checked; `user` normalised."""
    checked = dict(options)
    for key, check in _OPTION_CHECKS.items():
        if key in checked:
            checked[key] = check(checked[key], key)
    if "user" in checked:
        checked["user"] = user(checked["user"])
    stop = checked.get("stop")
    if isinstance(stop, str):
        checked["stop"] = stop = [stop]  # as openai-python accepts it
    if isinstance(stop, list):
        for i, item in enumerate(stop):
            text(item, f"stop[{i}]")
    return checked


__all__ = [
    "bot",
    "count",
    "dollars",
    "files",
    "flag",
    "identifier",
    "key",
    "known_keys",
    "messages",
    "model_prompts",
    "name",
    "optional_text",
    "problem",
    "sampling",
    "storable",
    "text",
    "turn_options",
    "user",
    "utf8",
]
