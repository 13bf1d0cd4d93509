"""Read the PromQL out of dashboard JSON, ready to evaluate against a real Prometheus.

Standard library only, so tests (and anyone) can use it without grafana-foundation-sdk:

    from memexport.assets.dashboards.queries import load_dashboards, panel_queries
    for title, expr in panel_queries(load_dashboards()["process"]):
        ...  # GET /api/v1/query?query=expr
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memexport.assets.shipped import shipped

__all__ = ["iter_panels", "load_dashboards", "panel_queries", "substitute"]

def _shipped_dir() -> Path:
    path = shipped("grafana/dashboards/process.json")
    if path is None:
        raise FileNotFoundError("no shipped dashboards in this installation")
    return path.parent

# $__name, ${__name} (Grafana's global variables); checked before user variables.
_BUILTIN = re.compile(r"\$\{__([A-Za-z_]+)(?::[^}]*)?\}|\$__([A-Za-z_]+)")
# ${name}, ${name:format}, [[name]], $name (user variables such as $job, $instance, $cache).
_USER = re.compile(
    r"\$\{([A-Za-z_]\w*)(?::[^}]*)?\}"  # ${name}, ${name:format}
    r"|\[\[([A-Za-z_]\w*)(?::[^\]]*)?\]\]"  # [[name]]
    r"|\$([A-Za-z_]\w*)"  # $name
)


def _seconds(duration: str) -> int:
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", duration)
    if not m:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return int(int(m.group(1)) * factor)


def substitute(
    expr: str,
    *,
    rate_interval: str = "1m",
    interval: str = "30s",
    range_: str = "5m",
    value: str = ".+",
) -> str:
    """Replace Grafana variables in ``expr`` with values Prometheus can evaluate.

    ``$__rate_interval`` -> ``rate_interval``, ``$__interval`` -> ``interval``, ``$__range`` ->
    ``range_`` (``_s``/``_ms`` variants as numbers); every user variable (``$job``,
    ``${instance}``, ``[[cache]]``, ...) -> ``value`` (a regex matching every label value,
    as the dashboards use ``=~``). An unknown ``$__`` variable raises ValueError naming it.
    """
    builtins = {
        "rate_interval": rate_interval,
        "interval": interval,
        "interval_ms": str(_seconds(interval) * 1000),
        "range": range_,
        "range_s": str(_seconds(range_)),
        "range_ms": str(_seconds(range_) * 1000),
    }

    def builtin(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in builtins:
            raise ValueError(f"unknown Grafana variable $__{name} in {expr!r}")
        return builtins[name]

    return _USER.sub(lambda _: value, _BUILTIN.sub(builtin, expr))


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of ``dashboard``, including those nested in (collapsed) rows."""

    def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in panels:
            yield p
            yield from walk(p.get("panels") or [])

    yield from walk(dashboard.get("panels") or [])


def panel_queries(dashboard: dict[str, Any], **values: str) -> list[tuple[str, str]]:
    """``[(panel title, expr)]`` for every target of every panel, variables substituted.

    ``values`` are passed to ``substitute()`` (``rate_interval``, ``interval``, ``range_``,
    ``value``). Targets without an ``expr`` are skipped.
    """
    out: list[tuple[str, str]] = []
    for panel in iter_panels(dashboard):
        for t in panel.get("targets") or []:
            expr = t.get("expr")
            if expr:
                out.append((str(panel.get("title", "")), substitute(expr, **values)))
    return out


def load_dashboards(directory: Path | str | None = None) -> dict[str, dict[str, Any]]:
    """The dashboards of ``directory`` (default: the shipped ones): ``{file stem: JSON}``."""
    d = Path(directory) if directory is not None else _shipped_dir()
    return {p.stem: json.loads(p.read_text()) for p in sorted(d.glob("*.json"))}
