"""``memexport bench``: each hot path timed against its baseline in the same run.

Cases live in the modules of this package (``core``, ``caches``, ``pools``, ``agents``,
``otel``), each exposing ``cases(quick) -> list[Case]``. All cases of a module are run in
interleaved rounds, so a variant and its baseline see the same machine state; the figure
kept is the median per operation. Nothing here asserts on time: it reports.
"""

from __future__ import annotations

import gc
import importlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["Case", "Result", "main", "run"]

#: Modules of this package that hold cases, in report order; missing ones are skipped.
CASE_MODULES = ("core", "caches", "pools", "agents", "otel", "process", "tracing")


@dataclass(frozen=True)
class Case:
    """One timed operation: ``op(n)`` performs it ``n`` times."""

    name: str
    op: Callable[[int], object]
    baseline: str | None = None  # the case of the same module this one is compared with
    target: str = ""  # the target the issue sets, shown in the table
    clock: Callable[[], int] = time.perf_counter_ns  # time.thread_time_ns for CPU time


@dataclass(frozen=True)
class Result:
    name: str
    ns_per_op: float
    baseline: str | None
    baseline_ns_per_op: float | None
    ratio: float | None
    target: str

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ns_per_op": round(self.ns_per_op, 2),
            "baseline": self.baseline,
            "baseline_ns_per_op": (None if self.baseline_ns_per_op is None
                                   else round(self.baseline_ns_per_op, 2)),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
        }


def _calibrate(case: Case, budget_ns: int) -> int:
    n = 1
    while True:
        t0 = case.clock()
        case.op(n)
        dt = case.clock() - t0
        if dt >= budget_ns or n >= 1 << 24:
            return n
        n = n * 2 if dt <= 0 else max(n * 2, min(n * 8, int(n * budget_ns / dt) + 1))


def _measure(cases: Sequence[Case], quick: bool) -> dict[str, float]:
    budget_ns = 2_000_000 if quick else 10_000_000
    rounds = 5 if quick else 15
    sizes = {c.name: _calibrate(c, budget_ns) for c in cases}
    per_op: dict[str, list[float]] = {c.name: [] for c in cases}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            order = cases if r % 2 == 0 else list(reversed(cases))
            for case in order:
                n = sizes[case.name]
                t0 = case.clock()
                case.op(n)
                per_op[case.name].append((case.clock() - t0) / n)
            gc.collect()
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: statistics.median(v) for name, v in per_op.items()}


def run(quick: bool = False, only: str | None = None,
        modules: Sequence[str] = CASE_MODULES) -> list[Result]:
    """Run every case (or those whose name contains ``only``) and return the results."""
    results: list[Result] = []
    for mod_name in modules:
        try:
            mod = importlib.import_module(f"{__name__}.{mod_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{mod_name}":
                continue
            raise
        cases = [c for c in mod.cases(quick) if only is None or only in c.name]
        by_name = {c.name: c for c in cases}
        for c in cases:
            if c.baseline is not None and c.baseline not in by_name:
                by_name[c.baseline] = next(x for x in mod.cases(quick) if x.name == c.baseline)
        if not by_name:
            continue
        timed = _measure(list(by_name.values()), quick)
        for c in by_name.values():
            if only is not None and only not in c.name and c.name not in (
                    x.baseline for x in cases):
                continue
            base = timed.get(c.baseline) if c.baseline else None
            results.append(Result(c.name, timed[c.name], c.baseline, base,
                                  None if not base else timed[c.name] / base, c.target))
    return results


def _table(results: Sequence[Result], out: TextIO) -> None:
    width = max([len(r.name) for r in results] + [4])
    out.write(f"{'case':<{width}}  {'ns/op':>12}  {'vs baseline':>11}  baseline / target\n")
    for r in results:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        tail = r.baseline or ""
        if r.target:
            tail = f"{tail}  [{r.target}]" if tail else f"[{r.target}]"
        out.write(f"{r.name:<{width}}  {r.ns_per_op:>12,.1f}  {ratio:>11}  {tail}\n")


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="memexport bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (< 30 s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--only", metavar="TEXT", help="only cases whose name contains TEXT")
    args = parser.parse_args(argv)
    results = run(quick=args.quick, only=args.only)
    if args.only is not None and not results:
        parser.error(f"--only {args.only[:80]!r} matches no case name "
                     f"(run memexport bench to see them)")
    if args.json:
        json.dump({"cases": [r.as_json() for r in results]}, out)
        out.write("\n")
    else:
        _table(results, out)
    return 0
