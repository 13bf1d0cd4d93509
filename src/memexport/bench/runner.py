"""Running a module's entries: timed cases in interleaved rounds, then measures, then
derived figures; entries are chosen by ``--only`` with what they are compared with."""

from __future__ import annotations

import gc
import importlib
import statistics
from collections.abc import Sequence

from memexport.bench.model import Case, Derived, Entry, Measure, Result, Skipped

__all__ = ["Outcome", "run_module", "select"]

#: Results and skipped entries of one or more modules.
Outcome = tuple[list[Result], list[Skipped]]


def _calibrate(case: Case, budget_ns: int) -> int:
    n = 1
    while True:
        t0 = case.clock()
        case.op(n)
        dt = case.clock() - t0
        if dt >= budget_ns or n >= 1 << 24:
            return n
        n = n * 2 if dt <= 0 else max(n * 2, min(n * 8, int(n * budget_ns / dt) + 1))


def _time(cases: Sequence[Case], quick: bool) -> dict[str, float]:
    """Median ns per operation of each case, over rounds alternating the order of cases."""
    budget_ns = 2_000_000 if quick else 10_000_000
    rounds = 5 if quick else 15
    per_op: dict[str, list[float]] = {c.name: [] for c in cases}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        sizes = {c.name: _calibrate(c, budget_ns) for c in cases}
        for r in range(rounds):
            order = cases if r % 2 == 0 else list(reversed(cases))
            for case in order:
                n = sizes[case.name]
                if case.gc:
                    gc.enable()
                try:
                    t0 = case.clock()
                    case.op(n)
                    dt = case.clock() - t0
                finally:
                    gc.disable()
                per_op[case.name].append(dt / (n * case.per))
            gc.collect()
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: statistics.median(v) for name, v in per_op.items()}


def select(entries: Sequence[Entry], only: str | None) -> list[Entry]:
    """The entries whose name contains ``only``, plus those they are compared with or
    derived from (transitively), in module order."""
    if only is None:
        return list(entries)
    by_name = {e.name: e for e in entries}
    wanted = {e.name for e in entries if only in e.name}
    todo = list(wanted)
    while todo:
        e = by_name[todo.pop()]
        deps: tuple[str, ...] = ()
        if isinstance(e, Case | Measure) and e.baseline is not None:
            deps = (e.baseline,)
        elif isinstance(e, Derived):
            deps = e.needs
        for d in deps:
            if d not in wanted and d in by_name:
                wanted.add(d)
                todo.append(d)
    return [e for e in entries if e.name in wanted]


def _note(case: Case) -> str:
    return case.note() if callable(case.note) else case.note


def _reading(value: float | tuple[float, str]) -> tuple[float, str]:
    return value if isinstance(value, tuple) else (float(value), "")


def run_entries(entries: Sequence[Entry], quick: bool) -> Outcome:
    """Run entries of one module (already selected) and return results in their order."""
    cases = [e for e in entries if isinstance(e, Case)]
    timed = _time(cases, quick) if cases else {}
    done: dict[str, Result] = {}
    skipped: list[Skipped] = []
    for e in entries:
        if isinstance(e, Case):
            done[e.name] = Result(e.name, timed[e.name], "ns", target=e.target, note=_note(e))
        elif isinstance(e, Measure):
            value, note = _reading(e.fn())
            done[e.name] = Result(e.name, value, e.unit, target=e.target, note=note)
        elif isinstance(e, Derived):
            if all(n in done for n in e.needs):
                value, note = _reading(e.fn(done))
                done[e.name] = Result(e.name, value, e.unit, target=e.target, note=note)
            else:
                skipped.append(Skipped(e.name, "a figure it is derived from did not run"))
        else:
            skipped.append(e)
    out = []
    for e in entries:
        r = done.get(e.name)
        if r is None:
            continue
        base = getattr(e, "baseline", None)
        if base is not None and base in done:
            r = Result(r.name, r.value, r.unit, base, done[base].value, r.target, r.note)
        out.append(r)
    return out, skipped


def run_module(package: str, mod_name: str, quick: bool, only: str | None) -> Outcome:
    """Import ``package.mod_name`` and run its selected entries. A module whose import
    needs a part of memexport this version lacks (or an optional package) is skipped."""
    try:
        mod = importlib.import_module(f"{package}.{mod_name}")
    except ImportError as exc:
        if only is not None and only not in mod_name:
            return [], []
        missing = getattr(exc, "name", None) or "a module"
        return [], [Skipped(f"{mod_name}: every case", f"needs {missing}, not importable here")]
    entries: list[Entry] = list(mod.cases(quick))
    return run_entries(select(entries, only), quick)
