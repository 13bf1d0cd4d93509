"""A small deterministic YAML writer for rule files: no PyYAML needed at run time.

It writes the subset rule files use (mappings, lists, strings, numbers), multi-line PromQL as
``|`` blocks and long text as ``>-`` blocks, and a ``#`` comment above a rule from its
``"#"`` key, so the committed files read like hand-written ones and are byte-stable.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["dump"]

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./:-]*(?<!:)$")
_DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"}
WIDTH = 96


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if value is None:
        return "null"
    text = str(value)
    if (_PLAIN.match(text) and text.lower() not in _RESERVED) or _DURATION.match(text):
        return text
    if text.isprintable() and "'" not in text:
        return f"'{text}'"
    return json.dumps(text, ensure_ascii=False)


def _block(key: str, text: str, indent: str) -> list[str]:
    """``key: |`` for multi-line text, ``key: >-`` for long single-line prose."""
    inner = indent + "  "
    if "\n" in text.rstrip("\n"):
        body = text if text.endswith("\n") else text + "\n"
        return [f"{indent}{key}: |", *(inner + line if line else ""
                                       for line in body.rstrip("\n").split("\n"))]
    lines = textwrap.wrap(text, WIDTH - len(inner), break_long_words=False,
                          break_on_hyphens=False)
    return [f"{indent}{key}: >-", *(inner + line for line in lines)]


def _foldable(text: str) -> bool:
    """Whether ``>-`` gives ``text`` back unchanged: single spaces, no edges, no tabs."""
    return ("  " not in text and text == text.strip() and "\t" not in text
            and not text.startswith(("#", "-", "?", ":", "{", "[", "!", "&", "*", "'", '"')))


def _mapping(data: Mapping[str, Any], indent: str) -> list[str]:
    out: list[str] = []
    for key, value in data.items():
        if key == "#":
            continue
        k = _scalar(key)
        if isinstance(value, Mapping):
            if not value:
                out.append(f"{indent}{k}: {{}}")
            else:
                out.append(f"{indent}{k}:")
                out.extend(_mapping(value, indent + "  "))
        elif isinstance(value, list | tuple):
            if not value:
                out.append(f"{indent}{k}: []")
            else:
                out.append(f"{indent}{k}:")
                out.extend(_sequence(value, indent + "  "))
        elif isinstance(value, str) and ("\n" in value.rstrip("\n")
                                         or (len(value) + len(indent) + len(k) > WIDTH
                                             and _foldable(value))):
            out.extend(_block(k, value, indent))
        else:
            out.append(f"{indent}{k}: {_scalar(value)}")
    return out


def _comment(text: str, indent: str, wrap: bool = True) -> list[str]:
    """``# `` lines: a paragraph wrapped to the width, or (``wrap=False``) lines as given."""
    lines = ([line for para in text.split("\n")
              for line in (textwrap.wrap(para, WIDTH - len(indent) - 2) or [""])]
             if wrap else text.split("\n"))
    return [f"{indent}# {line}".rstrip() for line in lines]


def _sequence(items: Sequence[Any], indent: str) -> list[str]:
    out: list[str] = []
    for item in items:
        if isinstance(item, Mapping):
            if "#" in item:
                out.extend(_comment(str(item["#"]), indent))
            lines = _mapping(item, indent + "  ")
            if lines:
                out.append(indent + "- " + lines[0][len(indent) + 2:])
                out.extend(lines[1:])
            else:
                out.append(indent + "- {}")
        else:
            out.append(f"{indent}- {_scalar(item)}")
    return out


def dump(data: Mapping[str, Any], header: str = "") -> str:
    """YAML text for ``data``, with ``header`` as a leading comment block."""
    out = _comment(header, "", wrap=False) if header else []
    out.extend(_mapping(data, ""))
    return "\n".join(out) + "\n"
