"""The value types of the assets config: Prometheus durations and the one config error."""

from __future__ import annotations

import re
from typing import NewType

__all__ = ["ConfigError", "Duration", "doc", "format_duration", "parse_duration"]

#: A Prometheus duration string (``30s``, ``15m``, ``1h30m``, ``1d``).
Duration = NewType("Duration", str)

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"^(?:(\d+)(ms|s|m|h|d|w|y))+$")
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


class ConfigError(ValueError):
    """A config value or key that cannot be used; the message names it."""


def parse_duration(text: str, where: str = "duration") -> float:
    """Seconds in a Prometheus duration; ``ConfigError`` naming ``where`` if it is not one."""
    if not isinstance(text, str) or not _DURATION.match(text):
        raise ConfigError(f"{where}: expected a Prometheus duration like 15m or 2h, "
                          f"got {str(text)[:40]!r}")
    return float(sum(int(n) * _UNITS[u] for n, u in _PART.findall(text)))


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration for ``seconds`` (rounded to whole milliseconds)."""
    ms = round(seconds * 1000)
    if ms <= 0:
        raise ConfigError(f"duration must be positive, got {seconds!r} seconds")
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000),
                       ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)


def doc(text: str) -> dict[str, str]:
    """Field metadata: the one-line meaning ``memexport assets config`` prints."""
    return {"doc": text}
