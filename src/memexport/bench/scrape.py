"""Scrapes on equal output: memexport against prometheus_client rendering the same lines, at
100, 1,000 and 10,000 components (100 and 1,000 with --quick); the per-series slope; the
first scrape against the steady state, also at 10,000 sessions of one name.

Each side runs in processes of its own (``scrapeworker``), alternating, so that the cyclic
GC of a scrape walks that side's heap only: the caches of the app, and memexport's
components or prometheus_client's label children. The prometheus_client side is built from
the memexport side's exposition (same names, labels, values; ``_created`` disabled); the
note gives both line counts and whether the sample lines match. Figures: medians over all
scrapes of a side with the GC on (the target) and off. Targets (issue 12): at most 1.25x
prometheus_client with the GC on at every size; the first scrape not a cliff, taken as at
most 50 ms over the steady-state median of the same process (first reads of sizes are
time-boxed to 20 ms; Prometheus' default scrape timeout is 10 s).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

from memexport.bench.model import Derived, Entry, Measure, Result, delta_at_most, ratio_at_most

__all__ = ["cases", "sample_keys"]

SCRAPE = ratio_at_most(1.25)
NO_CLIFF = delta_at_most(50e6)


def sample_keys(text: str) -> list[str]:
    """The sample lines of an exposition without their values (name and labels)."""
    return sorted(line.rsplit(" ", 1)[0] for line in text.splitlines()
                  if line and not line.startswith("#"))


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    res = subprocess.run([sys.executable, "-m", "memexport.bench.scrapeworker",
                          json.dumps(spec)], capture_output=True, text=True, timeout=600,
                         check=False)
    if res.returncode != 0:
        tail = res.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"scrape worker {spec['side']} failed: {tail[0][:200]}")
    out: dict[str, Any] = json.loads(res.stdout)
    with open(spec["out"], encoding="utf-8") as f:
        out["text"] = f.read()
    return out


class Sides:
    """Both sides at one size, run on first use: ``procs`` processes each, alternating."""

    def __init__(self, n: int, rounds: int, procs: int) -> None:
        self.n, self.rounds, self.procs = n, rounds, procs
        self._runs: dict[str, list[dict[str, Any]]] | None = None

    def runs(self) -> dict[str, list[dict[str, Any]]]:
        if self._runs is None:
            runs: dict[str, list[dict[str, Any]]] = {"memexport": [], "prometheus_client": []}
            with tempfile.TemporaryDirectory(prefix="memexport-bench-") as tmp:
                ours = os.path.join(tmp, "memexport.txt")  # the lines the mirror renders
                pair = ("memexport", "prometheus_client")
                for i in range(self.procs):  # M P, P M, M P, ...: memexport goes first
                    for side in pair if i % 2 == 0 else pair[::-1]:
                        spec = {"side": side, "n": self.n, "rounds": self.rounds,
                                "out": os.path.join(tmp, f"{side}{i}.txt"), "mirror_of": ours}
                        run = _worker(spec)
                        if not os.path.exists(ours):
                            with open(ours, "w", encoding="utf-8") as f:
                                f.write(run["text"])
                        runs[side].append(run)
            self._runs = runs
        return self._runs

    def median(self, side: str, key: str) -> float:
        values: list[float] = []
        for run in self.runs()[side]:
            values += run[key] if isinstance(run[key], list) else [run[key]]
        return statistics.median(values)

    def series(self, side: str) -> int:
        return len(sample_keys(self.runs()[side][0]["text"]))

    def note(self) -> str:
        ours = self.runs()["memexport"][0]
        theirs = self.runs()["prometheus_client"][0]
        same = sample_keys(ours["text"]) == sample_keys(theirs["text"])
        return (f"{ours['what']}; lines {len(ours['text'].splitlines()):,} vs "
                f"{len(theirs['text'].splitlines()):,}, samples {self.series('memexport'):,} "
                f"vs {self.series('prometheus_client'):,}, "
                f"{'same sample lines' if same else 'SAMPLE LINES DIFFER'}; "
                f"{self.procs} processes x {self.rounds} scrapes per side")


def _size_entries(s: Sides) -> list[Entry]:
    n = f"{s.n:,}"
    out: list[Entry] = []
    for gc_on, key in ((True, "gc_on"), (False, "gc_off")):
        tag = "GC on" if gc_on else "GC off"
        base = f"scrape: prometheus_client, same lines as {n} caches ({tag})"

        def theirs(key: str = key) -> tuple[float, str]:
            return s.median("prometheus_client", key), ""

        def ours(key: str = key) -> tuple[float, str]:
            return s.median("memexport", key), s.note()

        out.append(Measure(base, theirs, "ns"))
        out.append(Measure(f"scrape: memexport, {n} caches ({tag})", ours, "ns",
                           SCRAPE if gc_on else None, baseline=base))
    first_base = f"scrape: memexport, {n} caches (GC on)"

    def first() -> tuple[float, str]:
        return s.median("memexport", "first"), (
            f"prometheus_client's first: "
            f"{s.median('prometheus_client', 'first') / 1e6:,.1f} ms")

    out.append(Measure(f"scrape: memexport first scrape, {n} caches", first, "ns", NO_CLIFF,
                       baseline=first_base))
    return out


def _slope(small: Sides, big: Sides, side: str) -> float:
    dt = big.median(side, "gc_on") - small.median(side, "gc_on")
    return dt / (big.series(side) - small.series(side))


def _sessions_entries(n: int, rounds: int) -> list[Entry]:
    memo: dict[str, Any] = {}

    def run() -> dict[str, Any]:
        if not memo:
            with tempfile.TemporaryDirectory(prefix="memexport-bench-") as tmp:
                memo.update(_worker({"side": "sessions", "n": n, "rounds": rounds,
                                     "out": os.path.join(tmp, "sessions.txt")}))
        return memo

    steady = f"scrape: memexport, {n:,} sessions of one name (GC on)"
    return [
        Measure(steady, lambda: float(statistics.median(run()["gc_on"])), "ns"),
        Measure(f"scrape: memexport first scrape, {n:,} sessions of one name",
                lambda: float(run()["first"]), "ns", NO_CLIFF, baseline=steady),
    ]


def cases(quick: bool) -> list[Entry]:
    sizes = (100, 1_000) if quick else (100, 1_000, 10_000)
    rounds, procs = (5, 1) if quick else (15, 2)
    # 10,000 components: fewer scrapes per process (each takes about a second)
    sides = [Sides(n, rounds if n < 10_000 else 5, procs) for n in sizes]
    out: list[Entry] = []
    for s in sides:
        out += _size_entries(s)
    small, big = sides[0], sides[-1]
    label = f"{small.n:,} to {big.n:,} caches, GC on"
    theirs_name = f"scrape: prometheus_client per-series slope, {label}"
    needs = (f"scrape: memexport, {small.n:,} caches (GC on)",
             f"scrape: memexport, {big.n:,} caches (GC on)")

    def slope_theirs(_r: Mapping[str, Result]) -> float:
        return _slope(small, big, "prometheus_client")

    def slope_ours(r: Mapping[str, Result]) -> tuple[float, str]:
        ours, theirs = _slope(small, big, "memexport"), _slope(small, big, "prometheus_client")
        return ours, f"{ours / theirs:.2f}x prometheus_client's {theirs:,.0f} ns per sample"

    out.append(Derived(theirs_name, needs, slope_theirs, "ns"))
    out.append(Derived(f"scrape: memexport per-series slope, {label}", needs, slope_ours, "ns"))
    out += _sessions_entries(1_000 if quick else 10_000, rounds)
    return out
