"""Options shared by the commands: turn settings (-o), template and workflow variables (-v, -a)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click

# -o KEY=VALUE: the sampling settings a turn takes.
PARAMS = ("temperature", "max_tokens", "top_p", "top_k", "seed", "stop")


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """`-o temperature=0.2 -o stop=END` as turn options; values read as YAML scalars."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in PARAMS:
            raise click.BadParameter(
                f"{pair!r}: use KEY=VALUE with KEY one of {', '.join(PARAMS)}.",
                param_hint="-o",
            )
        value = yaml_value(raw, pair, "-o") if raw.strip() else None
        if key == "stop":
            params.setdefault("stop", []).extend(value if isinstance(value, list) else [str(value)])
        else:
            params[key] = value
    return params


def yaml_value(raw: str, given: str, param_hint: str) -> Any:
    """A command-line value read as YAML; a usage error in one line if it is not YAML."""
    import yaml

    from chinwag.config import yaml_problem

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        problem = yaml_problem(exc, where=False)
        raise click.BadParameter(
            f"{given!r} is not a valid YAML value ({problem}): give a number, true/false, "
            "text (in quotes if it starts with [ { : or #) or a list like [a, b].",
            param_hint=param_hint,
        ) from None


def parse_variables(pairs: Iterable[str], param_hint: str = "-v") -> dict[str, Any]:
    """`-v topic=tea -v count=3` as template (or workflow) variables: numbers and true/false
    read as YAML scalars, anything else as the text given."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r}: use NAME=VALUE.", param_hint=param_hint)
        try:
            value = yaml_value(raw, pair, param_hint) if raw.strip() else ""
        except click.BadParameter:
            value = raw  # not YAML: the text itself
        values[key.strip()] = value if isinstance(value, int | float | bool) else raw
    return values
