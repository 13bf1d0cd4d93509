#!/usr/bin/env python3
"""Generate memexport's Grafana dashboards from grafana/dashboards_src/*.py.

    python grafana/generate.py          # (re)write grafana/dashboards/*.json
    python grafana/generate.py --check  # exit 1 listing files that differ from the code

Every module of dashboards_src (except the helpers ``common``, ``queries`` and ``_*``) defines
``build() -> dict``; its JSON goes to ``grafana/dashboards/<module>.json``, rendered with sorted
keys, 2-space indent and a trailing newline so that the output is byte-stable.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DASHBOARDS_DIR = HERE / "dashboards"
HELPER_MODULES = frozenset({"common", "queries"})

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def dashboard_modules() -> list[str]:
    """Names of the dashboard modules in dashboards_src, sorted."""
    import dashboards_src

    return sorted(
        m.name
        for m in pkgutil.iter_modules(dashboards_src.__path__)
        if not m.ispkg and not m.name.startswith("_") and m.name not in HELPER_MODULES
    )


def build_all() -> dict[str, dict[str, Any]]:
    """``{module name: dashboard JSON}`` for every dashboard module."""
    out: dict[str, dict[str, Any]] = {}
    for name in dashboard_modules():
        module = importlib.import_module(f"dashboards_src.{name}")
        build = getattr(module, "build", None)
        if not callable(build):
            raise ValueError(f"dashboards_src/{name}.py defines no build() -> dict")
        dashboard = build()
        if not isinstance(dashboard, dict):
            raise ValueError(f"dashboards_src/{name}.py: build() returned "
                             f"{type(dashboard).__name__}, not dict")
        out[name] = dashboard
    return out


def dumps(dashboard: dict[str, Any]) -> str:
    """The committed form of a dashboard: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered() -> dict[Path, str]:
    """``{output path: file content}`` for every dashboard."""
    return {DASHBOARDS_DIR / f"{name}.json": dumps(d) for name, d in build_all().items()}


def _show(path: Path) -> str:
    try:
        return str(path.relative_to(HERE.parent))
    except ValueError:
        return str(path)


def differences(files: dict[Path, str] | None = None) -> list[str]:
    """Committed files that differ from the code: changed, missing or stale (no module)."""
    files = rendered() if files is None else files
    out: list[str] = []
    for path, text in sorted(files.items()):
        if not path.exists():
            out.append(f"{_show(path)} (missing)")
        elif path.read_text() != text:
            out.append(f"{_show(path)} (differs)")
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        if path not in files:
            out.append(f"{_show(path)} (stale: no dashboards_src module)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if a committed file differs from the code")
    args = parser.parse_args(argv)
    files = rendered()
    if args.check:
        diff = differences(files)
        for line in diff:
            print(line)
        if diff:
            print("dashboards are out of date: run `python grafana/generate.py`",
                  file=sys.stderr)
            return 1
        return 0
    DASHBOARDS_DIR.mkdir(exist_ok=True)
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        if path not in files:
            path.unlink()
            print(f"removed {_show(path)}")
    for path, text in sorted(files.items()):
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {_show(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
