"""``memexport bench``: every target of the performance work, measured and judged in one run.

Cases live in the modules named by ``CASE_MODULES``, each exposing ``cases(quick)`` that
returns entries (``memexport.bench.model``): timed cases, run in interleaved rounds so a
variant and its baseline see the same machine state (the figure is the median per
operation); measures taken once (memory per component, import time, ...); figures derived
from others (the per-series slope); and cases skipped for a missing package, which are
listed. Each entry may carry a ``Target``; the table and ``--json`` say met or missed.
Nothing here asserts on time: it reports. docs/performance.md says what each case measures.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from memexport.bench.model import (
    Case,
    Derived,
    Measure,
    Result,
    Skipped,
    Target,
    at_least,
    at_most,
    delta_at_most,
    ratio_at_most,
    shown,
)
from memexport.bench.runner import Outcome, run_module

__all__ = ["CASE_MODULES", "Case", "Derived", "Measure", "Result", "Skipped", "Target",
           "at_least", "at_most", "delta_at_most", "main", "ratio_at_most", "run"]

#: Modules of this package that hold cases, in report order.
CASE_MODULES = ("core", "scrape", "caches", "pools", "agents", "patched", "otel", "process",
                "threads", "memory", "instrumenting", "cycles", "sampling", "startup",
                "tracing")

#: prometheus_client picks its multiprocess mode from these when it is imported; the bench
#: times its default mode, and must not write its files into an app's directory.
_MULTIPROC_ENV = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


def run(quick: bool = False, only: str | None = None,
        modules: Sequence[str] = CASE_MODULES) -> Outcome:
    """Run every entry (or those whose name contains ``only``); results and skipped ones."""
    results: list[Result] = []
    skipped: list[Skipped] = []
    for mod_name in modules:
        r, s = run_module(__name__, mod_name, quick, only)
        results += r
        skipped += s
    return results, skipped


def _verdict(r: Result) -> str:
    met = r.met
    return "-" if met is None else ("met" if met else "MISSED")


def _vs(r: Result) -> str:
    ratio, delta = r.ratio, r.delta
    if ratio is None or delta is None:
        return "-"
    if r.target is not None and r.target.of == "delta":
        return ("+" if delta >= 0 else "-") + shown(abs(delta), r.unit)
    return f"{ratio:.2f}x"


def _table(results: Sequence[Result], skipped: Sequence[Skipped], out: TextIO) -> None:
    """One row per figure, numbered; a comparison names its baseline's row (``vs #n``)."""
    width = max([len(r.name) for r in results] + [4])
    row = {r.name: i for i, r in enumerate(results, 1)}
    out.write(f"{'#':>3}  {'case':<{width}}  {'value':>13}  {'vs baseline':>14}  "
              f"{'target':>14}  {'':6}  note\n")
    for i, r in enumerate(results, 1):
        target = str(r.target) if r.target is not None else ""
        tail = "; ".join(x for x in (f"vs #{row[r.baseline]}" if r.baseline in row else "",
                                     r.note) if x)
        line = (f"{i:>3}  {r.name:<{width}}  {shown(r.value, r.unit):>13}  {_vs(r):>14}  "
                f"{target:>14}  {_verdict(r):6}  {tail}")
        out.write(line.rstrip() + "\n")
    for s in skipped:
        out.write(f"{'-':>3}  {s.name:<{width}}  {'skipped':>13}  {s.reason}\n")
    judged = [r.met for r in results if r.met is not None]
    out.write(f"\ntargets: {judged.count(True)} met, {judged.count(False)} missed; "
              f"{len(results) - len(judged)} figures without a target; "
              f"{len(skipped)} skipped\n")


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="memexport bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="fewer sizes, shorter rounds (under a minute)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--only", metavar="TEXT", help="only cases whose name contains TEXT")
    args = parser.parse_args(argv)
    for var in _MULTIPROC_ENV:  # for this process and the scrape workers it starts
        os.environ.pop(var, None)
    results, skipped = run(quick=args.quick, only=args.only)
    if args.only is not None and not results and not skipped:
        parser.error(f"--only {args.only[:80]!r} matches no case name "
                     f"(run memexport bench to see them)")
    if args.json:
        judged = [r.met for r in results if r.met is not None]
        json.dump({"cases": [r.as_json() for r in results],
                   "skipped": [{"name": s.name, "reason": s.reason} for s in skipped],
                   "summary": {"met": judged.count(True), "missed": judged.count(False),
                               "without_target": len(results) - len(judged),
                               "skipped": len(skipped)}}, out, ensure_ascii=False)
        out.write("\n")
    else:
        _table(results, skipped, out)
    return 0
