"""Four threads hitting one cache: the throughput against the bare cache in four threads and
in one, and whether the exported hit count is exact.

Each timed operation is a cachetools ``c[k]`` hit (a dict ``d[k]`` without cachetools). The
one-thread figures are CPU time; the four-thread ones are the wall time of four threads
doing ``BATCH / 4`` hits each (started and joined inside the time), per hit.
Targets: at most +60 ns per hit with four threads, as with one (issue 12); memexport's
overhead with four threads at most 1.5x its overhead with one (GIL contention does not
grow); no hit lost under a 1 µs switch interval (exact counts).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import memexport
from memexport.bench import compat
from memexport.bench.model import Case, Derived, Entry, Measure, Result, at_most, delta_at_most

__all__ = ["cases", "hits_exported"]

THREADS = 4
BATCH = 100_000  # hits per timed count with threads: thread start-up is amortized
VALUE = {"role": "assistant", "content": "x" * 200}


def _make() -> tuple[Any, str]:
    try:
        import cachetools
    except ImportError:
        return {}, "dict d[k]"
    return cachetools.LRUCache(maxsize=1000), "cachetools c[k]"


def _hits(c: Any, threads: int, per: int = 1) -> Any:
    """``op(n)``: ``n * per`` hits on ``c``, shared by ``threads`` threads."""
    def work(m: int, start: threading.Barrier) -> None:
        start.wait()
        for _ in range(m):
            c["k"]

    def op(n: int) -> None:
        n *= per
        if threads == 1:
            for _ in range(n):
                c["k"]
            return
        start = threading.Barrier(threads)
        ts = [threading.Thread(target=work, args=(n // threads, start))
              for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return op


def hits_exported(prom: Any, name: str) -> float:
    """The hit count of cache ``name`` in one scrape of ``prom``."""
    from prometheus_client.parser import text_string_to_metric_families

    for fam in text_string_to_metric_families(compat.exposition(prom)):
        for s in fam.samples:
            if (s.name == "memexport_cache_requests_total" and s.labels.get("cache") == name
                    and s.labels.get("result") == "hit"):
                return float(s.value)
    return float("nan")


def _lost(per_thread: int) -> tuple[float, str]:
    reg = compat.new_registry()
    prom = compat.prometheus_registry(reg)
    bare, _what = _make()
    c = memexport.cache(bare, name="bench_exact", registry=reg)
    c["k"] = VALUE
    before = hits_exported(prom, "bench_exact")
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _hits(c, THREADS)(per_thread * THREADS)
    finally:
        sys.setswitchinterval(old)
    counted = hits_exported(prom, "bench_exact") - before
    done = per_thread * THREADS
    return done - counted, f"{counted:,.0f} of {done:,} hits exported"


def cases(quick: bool) -> list[Entry]:
    reg = compat.new_registry()
    out: list[Entry] = []
    names: dict[int, tuple[str, str]] = {}
    for threads in (1, THREADS):
        bare, what = _make()
        ours = memexport.cache(_make()[0], name=f"bench_threads{threads}", registry=reg)
        for c in (bare, ours):
            c["k"] = VALUE
        tag = "1 thread" if threads == 1 else f"{threads} threads"
        base = f"threads: {what} hit, uninstrumented, {tag}"
        mine = f"threads: {what} hit, memexport, {tag}"
        names[threads] = (base, mine)
        per = 1 if threads == 1 else BATCH
        clock = time.thread_time_ns if threads == 1 else time.perf_counter_ns
        out += [Case(base, _hits(bare, threads, per), per=per, clock=clock),
                Case(mine, _hits(ours, threads, per), base, delta_at_most(60), per=per,
                     clock=clock)]

    def growth(r: Mapping[str, Result]) -> tuple[float, str]:
        one = r[names[1][1]].value - r[names[1][0]].value
        four = r[names[THREADS][1]].value - r[names[THREADS][0]].value
        return four / one if one > 0 else float("inf"), (
            f"overhead {four:+.1f} ns with {THREADS} threads, {one:+.1f} ns with 1")

    out.append(Derived(f"threads: overhead with {THREADS} threads / with 1",
                       (*names[1], *names[THREADS]), growth, "x", at_most(1.5, "x")))
    per_thread = 20_000 if quick else 200_000
    out.append(Measure(f"threads: hits lost, {THREADS} threads x {per_thread:,}, 1 µs switches",
                       lambda: _lost(per_thread), "hits", at_most(0, "hits")))
    cases.keep = reg  # type: ignore[attr-defined]
    return out
