"""``memexport assets``: write the alert rules for a config, check a copy, show the settings.

    memexport assets rules --out /etc/prometheus/memexport           # the shipped defaults
    memexport assets rules --config mine.yml --set pools.held_on_purpose=pubsub --out DIR
    memexport assets rules --check alerts/                           # exit 1 if it differs
    memexport assets config                                          # every setting, default
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from memexport.assets.generate import differences, render_rules, write_rules
from memexport.assets.loading import describe, load_config
from memexport.assets.values import ConfigError

__all__ = ["main"]


def _config_text() -> str:
    lines = ["# memexport alert settings: `memexport assets rules --config FILE` reads a file "
             "with any of these", "# keys (dotted keys are nested mappings); the rest keep "
             "their defaults. JSON works too.", ""]
    for key, default, doc in describe():
        lines.append(f"{key}: {default}" + (f"    # {doc}" if doc else ""))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="memexport assets",
                                description="Generate memexport's alert rules from one config.")
    sub = p.add_subparsers(dest="what", required=True)
    rules = sub.add_parser("rules", help="write (or check) the *.rules.yml files")
    rules.add_argument("--config", type=Path, help="a YAML or JSON file of settings")
    rules.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="a setting, e.g. process.trend_window=20m")
    target = rules.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="directory to write the rule files into")
    target.add_argument("--check", type=Path, metavar="DIR",
                        help="compare DIR with the generated files; exit 1 if they differ")
    sub.add_parser("config", help="print every setting with its default and meaning")
    args = p.parse_args(argv)
    if args.what == "config":
        sys.stdout.write(_config_text())
        return 0
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"memexport assets: {exc}", file=sys.stderr)
        return 2
    if args.check is not None:
        diff = differences(args.check, render_rules(cfg))
        for line in diff:
            print(line)
        if diff:
            print("rule files are out of date: run `memexport assets rules --out "
                  f"{args.check}`", file=sys.stderr)
        return 1 if diff else 0
    for name in write_rules(cfg, args.out):
        print(f"wrote {args.out / name}")
    return 0
