"""Run as a script: fail any import that chinwag[local]'s declared dependencies don't bring.

Used by test_local.py to run the main job as a fresh `pip install chinwag[local]` would.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata as md
import re
import runpy
import sys


def _closure(root: str, extras: set[str]) -> set[str]:
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if (key, frozenset(wanted)) in seen:
            continue
        seen.add((key, frozenset(wanted)))
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for req in requires:
            spec, _, marker = req.partition(";")
            if "extra ==" in marker and not any(f'"{e}"' in marker for e in wanted):
                continue
            if "extra ==" not in marker and marker.strip() and not eval_marker(marker):
                continue
            match = re.match(r"\s*([A-Za-z0-9_.\-]+)(\[([^\]]*)\])?", spec)
            if match:
                sub_extras = {e.strip() for e in (match.group(3) or "").split(",") if e.strip()}
                todo.append((match.group(1), sub_extras))
    return {name for name, _ in seen}


def eval_marker(marker: str) -> bool:
    from packaging.markers import Marker

    return Marker(marker).evaluate()


allowed_dists = _closure("chinwag", {"local"})
owners = md.packages_distributions()


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        top = fullname.split(".")[0]
        dists = owners.get(top)
        if dists and not any(re.sub(r"[-_.]+", "-", d).lower() in allowed_dists for d in dists):
            raise ModuleNotFoundError(f"{top} is not a declared dependency of chinwag[local]")
        return None


sys.meta_path.insert(0, Blocker())
sys.argv = ["chinwag", *sys.argv[1:]]
runpy.run_module("chinwag", run_name="__main__")
