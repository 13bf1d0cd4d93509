"""One entry-point group's ``(name, value)`` pairs, read without ``importlib.metadata`` when
the installed packages are plain directories on ``sys.path``.

``importlib.metadata`` costs a first instrument call about 20 ms (importing it pulls in
``email``, then every package's entry points are parsed), a third of memexport's start-up.
This reads what it would for one group: the ``*.dist-info`` / ``*.egg-info`` directories of
each ``sys.path`` directory in order, the first of each normalised name only, and the
group's section of their ``entry_points.txt``. Anything else that can provide distributions
(a zip on ``sys.path``, a finder of its own with ``find_distributions``) makes it ask
``importlib.metadata`` itself, as does any file it cannot read.
"""

from __future__ import annotations

import os
import re
import sys

__all__ = ["group_entries"]

_NORMAL = re.compile(r"[-_.]+")


class _Unsure(Exception):
    """Something only ``importlib.metadata`` knows how to read."""


def _plain_environment() -> bool:
    path_finder = getattr(sys.modules.get("importlib.machinery"), "PathFinder", None)
    for finder in sys.meta_path:
        if getattr(finder, "find_distributions", None) is not None and finder is not path_finder:
            return False
    return True


def _section(text: str, group: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            inside = line.strip("[]") == group
            continue
        if inside:
            name, eq, value = line.partition("=")
            if not eq:
                raise _Unsure
            out.append((name.strip(), value.strip()))
    return out


def _scan(group: str) -> list[tuple[str, str]]:
    seen: set[str] = set()
    found: list[tuple[str, str]] = []
    marker = f"[{group}]"
    for entry in sys.path:
        root = entry or "."
        if os.path.isfile(root) or root.lower().endswith(".egg"):
            raise _Unsure  # a zip or an egg: importlib.metadata reads those
        try:
            names = os.listdir(root)
        except OSError:
            continue
        for child in names:
            low = child.lower()
            if not (low.endswith(".dist-info") or low.endswith(".egg-info")):
                continue
            if not (child.endswith(".dist-info") or child.endswith(".egg-info")):
                raise _Unsure  # named from its METADATA by importlib.metadata
            stem = child.rpartition(".")[0]
            key = _NORMAL.sub("_", stem.partition("-")[0]).lower()
            if key in seen:
                continue
            seen.add(key)
            path = os.path.join(root, child, "entry_points.txt")
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except (FileNotFoundError, NotADirectoryError):  # none, or an egg-info file
                continue
            except (OSError, UnicodeDecodeError):
                raise _Unsure from None
            if marker in text:
                found.extend(_section(text, group))
    return found


def group_entries(group: str) -> list[tuple[str, str]]:
    """``(name, value)`` of the entry points of ``group`` of the installed distributions."""
    if _plain_environment():
        try:
            return _scan(group)
        except _Unsure:
            pass
    from importlib.metadata import entry_points

    return [(ep.name, ep.value) for ep in entry_points(group=group)]
