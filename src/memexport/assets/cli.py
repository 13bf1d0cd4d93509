"""``memexport assets``: write the alert rules and dashboards for a config, check a copy, show
the settings.

    memexport assets rules --out /etc/prometheus/memexport           # the shipped defaults
    memexport assets rules --config mine.yml --set pools.held_on_purpose=pubsub --out DIR
    memexport assets rules --check alerts/                           # exit 1 if it differs
    memexport assets dashboards --out /var/lib/grafana/dashboards/memexport
    memexport assets config                                          # every setting, default
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from memexport.assets.config import Config
from memexport.assets.dashboards import render_dashboards
from memexport.assets.files import differences, write_files
from memexport.assets.generate import render_rules
from memexport.assets.loading import describe, load_config
from memexport.assets.values import ConfigError

__all__ = ["main"]

#: What each subcommand writes: the files of a config, and the globs of files it owns.
WHAT: dict[str, tuple[Callable[[Config], dict[str, str]], tuple[str, ...], str]] = {
    "rules": (render_rules, ("*.rules.yml",), "the *.rules.yml files"),
    "dashboards": (render_dashboards, ("*.json",), "the Grafana dashboards' JSON"),
}


def _config_text() -> str:
    lines = ["# memexport assets settings: `memexport assets --config FILE` reads a file with "
             "any of these", "# keys (dotted keys are nested mappings); the rest keep their "
             "defaults. JSON works too.", ""]
    for key, default, doc in describe():
        lines.append(f"{key}: {default}" + (f"    # {doc}" if doc else ""))
    return "\n".join(lines) + "\n"


def _options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--config", type=Path, help="a YAML or JSON file of settings")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="a setting, e.g. process.trend_window=20m")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help=f"directory to write {what} into")
    target.add_argument("--check", type=Path, metavar="DIR",
                        help="compare DIR with the generated files; exit 1 if they differ")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="memexport assets",
        description="Generate memexport's alert rules and Grafana dashboards from one config.")
    sub = p.add_subparsers(dest="what", required=True)
    for name, (_, _, what) in WHAT.items():
        _options(sub.add_parser(name, help=f"write (or check) {what}"), what)
    sub.add_parser("config", help="print every setting with its default and meaning")
    return p


def _run(args: argparse.Namespace, render: Callable[[Config], dict[str, str]],
         stale: tuple[str, ...]) -> int:
    try:
        cfg = load_config(args.config, args.overrides)
        files = render(cfg)
    except ConfigError as exc:
        print(f"memexport assets: {exc}", file=sys.stderr)
        return 2
    if args.check is not None:
        diff = differences(args.check, files, stale)
        for line in diff:
            print(line)
        if diff:
            print(f"{args.check} is out of date: run `memexport assets {args.what} --out "
                  f"{args.check}` with the same settings", file=sys.stderr)
        return 1 if diff else 0
    for name in write_files(args.out, files):
        print(f"wrote {args.out / name}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.what == "config":
        sys.stdout.write(_config_text())
        return 0
    render, stale, _ = WHAT[args.what]
    return _run(args, render, stale)
