"""``memexport assets``: write the alert rules, dashboards and their configs for a config,
check a copy, show the settings.

    memexport assets --out DIR --config mine.yml --set runbook_url=https://wiki/{anchor}
    memexport assets --check DIR --config mine.yml                   # exit 1 if DIR differs
    memexport assets rules --out /etc/prometheus/memexport           # the rule files only
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
from memexport.assets.layout import USER, render_layout
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


def _options(p: argparse.ArgumentParser, what: str, required: bool = True) -> None:
    p.add_argument("--config", type=Path, help="a YAML or JSON file of settings")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="a setting, e.g. process.trend_window=20m")
    target = p.add_mutually_exclusive_group(required=required)
    target.add_argument("--out", type=Path, help=f"directory to write {what} into")
    target.add_argument("--check", type=Path, metavar="DIR",
                        help="compare DIR with the generated files; exit 1 if they differ")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="memexport assets",
        description="Generate memexport's alert rules, Alertmanager example, Grafana dashboards "
                    "and provisioning, and a PrometheusRule from one config: --out DIR writes "
                    "them all (rules/, dashboards/, provisioning/, alertmanager.yml, "
                    "alertmanager-actions.yml, prometheusrule.yaml, runbook.md), a command "
                    "writes one kind.")
    _options(p, "every asset", required=False)
    sub = p.add_subparsers(dest="what")
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
            command = " ".join(["memexport assets", *([args.what] if args.what else [])])
            print(f"{args.check} is out of date: run `{command} --out {args.check}` with the "
                  f"same settings", file=sys.stderr)
        return 1 if diff else 0
    for name in write_files(args.out, files):
        print(f"wrote {args.out / name}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.what == "config":
        sys.stdout.write(_config_text())
        return 0
    if args.what is None:
        if args.out is None and args.check is None:
            _parser().error("give --out DIR, --check DIR or a command (rules, dashboards, "
                            "config)")
        root = args.out if args.out is not None else args.check
        args.what = ""
        return _run(args, lambda cfg: render_layout(cfg, root), USER.stale)
    render, stale, _ = WHAT[args.what]
    return _run(args, render, stale)
