"""Scrapes on equal output, through the serving path: what ``/metrics`` does (memexport's
``make_wsgi_app``, the app its HTTP server runs: ``exporters.encode``) against prometheus_client
serving the same families through a custom collector and ``generate_latest``, at 100, 1,000
and 10,000 components (100 and 1,000 with --quick); the per-series slope; the first scrape
against the steady state, also at 10,000 sessions of one name.

Each side runs in processes of its own (``scrapeworker``), alternating, so that the cyclic
GC of a scrape walks that side's heap only. The prometheus_client side's collector yields
the families of the memexport side's exposition (same names, help, units, labels, values; no
``_created``); the note says whether the outputs are equal byte for byte (they are, but for
the value of memexport's own scrape duration, which changes at every scrape) and gives both
line counts. Formats: text 0.0.4 (no Accept header, as curl; GC on and off), OpenMetrics as
the installed Prometheus asks for it, OpenMetrics with ``escaping=allow-utf-8``, and a
``GET /metrics`` over loopback to each side's HTTP server (process CPU time). Targets (issue
12): at most 1.25x prometheus_client with the GC on at every size, text 0.0.4 and OpenMetrics;
the first scrape not a cliff, taken as at most 50 ms over the steady-state median of the same
process (first reads of sizes are time-boxed to 20 ms; Prometheus' default scrape timeout is
10 s).
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

__all__ = ["cases", "same_output", "sample_keys"]

SCRAPE = ratio_at_most(1.25)
NO_CLIFF = delta_at_most(50e6)


def sample_keys(text: str) -> list[str]:
    """The sample lines of an exposition without their values (name and labels)."""
    return sorted(line.rsplit(" ", 1)[0] for line in text.splitlines()
                  if line and not line.startswith("#"))


#: memexport's own duration of the previous registry read: its value differs at every scrape.
VOLATILE = 'memexport_collector_duration_seconds{collector="registry"}'


def same_output(ours: str, theirs: str) -> str:
    """How equal two expositions are: byte for byte, byte for byte but the ``VOLATILE``
    value, the same sample lines (names and labels), or not."""
    if ours == theirs:
        return "same sample lines, byte for byte"
    a, b = ours.splitlines(), theirs.splitlines()
    if len(a) == len(b):
        diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
        if all(x.startswith(VOLATILE + " ") and y.startswith(VOLATILE + " ") for x, y in diff):
            return "same sample lines, byte for byte but memexport's own last read time"
    if sample_keys(ours) == sample_keys(theirs):
        return "same sample lines, values differ"
    return "SAMPLE LINES DIFFER"


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    res = subprocess.run([sys.executable, "-m", "memexport.bench.scrapeworker",
                          json.dumps(spec)], capture_output=True, text=True, timeout=600,
                         check=False)
    if res.returncode != 0:
        tail = res.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"scrape worker {spec['side']} failed: {tail[0][:200]}")
    out: dict[str, Any] = json.loads(res.stdout)
    with open(spec["out"], encoding="utf-8") as f:
        out["bodies"] = json.load(f)
    out["text"] = out["bodies"]["text"]
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
                ours = os.path.join(tmp, "memexport.json")  # the families the mirror yields
                pair = ("memexport", "prometheus_client")
                for i in range(self.procs):  # M P, P M, M P, ...: memexport goes first
                    for side in pair if i % 2 == 0 else pair[::-1]:
                        spec = {"side": side, "n": self.n, "rounds": self.rounds,
                                "out": os.path.join(tmp, f"{side}{i}.txt"), "mirror_of": ours}
                        run = _worker(spec)
                        if not os.path.exists(ours):
                            with open(ours, "w", encoding="utf-8") as f:
                                json.dump(run["bodies"], f)
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

    def note(self, fmt: str = "text") -> str:
        ours = self.runs()["memexport"][0]["bodies"][fmt]
        theirs = self.runs()["prometheus_client"][0]["bodies"][fmt]
        return (f"{self.runs()['memexport'][0]['what']}; lines {len(ours.splitlines()):,} vs "
                f"{len(theirs.splitlines()):,}, samples {len(sample_keys(ours)):,} "
                f"vs {len(sample_keys(theirs)):,}, {same_output(ours, theirs)}; "
                f"{self.procs} processes x {self.rounds} scrapes per side")


#: (result key, row label, target): text 0.0.4 GC on and off, the other formats GC on.
VARIANTS = (
    ("gc_on", "text", "(GC on)", SCRAPE),
    ("gc_off", "text", "(GC off)", None),
    ("openmetrics", "openmetrics", "OpenMetrics as Prometheus asks (GC on)", SCRAPE),
    ("utf8", "utf8", "OpenMetrics escaping=allow-utf-8 (GC on)", None),
    ("http", "http", "HTTP GET /metrics, process CPU (GC on)", None),
)


def _size_entries(s: Sides) -> list[Entry]:
    n = f"{s.n:,}"
    out: list[Entry] = []
    for key, fmt, tag, target in VARIANTS:
        label = tag if fmt == "text" else f", {tag}"
        sep = " " if fmt == "text" else ""
        base = f"scrape: prometheus_client, same lines as {n} caches{sep}{label}"

        def theirs(key: str = key) -> tuple[float, str]:
            return s.median("prometheus_client", key), ""

        def ours(key: str = key, fmt: str = fmt) -> tuple[float, str]:
            return s.median("memexport", key), s.note(fmt)

        out.append(Measure(base, theirs, "ns"))
        out.append(Measure(f"scrape: memexport, {n} caches{sep}{label}", ours, "ns", target,
                           baseline=base))
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
