"""One side of a scrape comparison, in a process of its own (``python -m
memexport.bench.scrapeworker SPEC``), so that each side's heap, and so the cyclic GC's work
during its scrapes, is its own, as in two separate apps.

Sides: ``memexport`` (``n`` cachetools caches, or dicts without cachetools, each with its own
name, instrumented in a private registry); ``prometheus_client`` (the same bare caches, plus
prometheus_client Gauges and Counters holding exactly the lines the memexport side wrote,
``_created`` series disabled); ``sessions`` (``n`` guide conversation managers of one name).
Prints one JSON object: the first scrape (of a registry no tick has sized yet), then, once the
registry's tick jobs have sized every component (the steady state of an app whose collector
has run a while; the exposition checked to no longer change), ``rounds`` scrapes with the GC on and
``rounds`` with it off, in ns of the scraping thread's CPU time (the GC's pauses included;
other processes on the machine not); the exposition goes to the file named in the spec.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from typing import Any

from memexport.bench import compat

__all__ = ["main"]

VALUE = {"role": "assistant", "content": "x" * 200}


def _caches(n: int) -> tuple[list[Any], str]:
    try:
        import cachetools
    except ImportError:
        caches: list[Any] = [{} for _ in range(n)]
        what = "dict"
    else:
        caches = [cachetools.LRUCache(maxsize=100) for _ in range(n)]
        what = "cachetools.LRUCache"
    for c in caches:
        for i in range(10):
            c[f"k{i}"] = VALUE
    return caches, what


def _memexport(n: int) -> tuple[Any, Any, list[Any], str]:
    import memexport

    reg = compat.new_registry(max_names_per_kind=n + 10)
    bare, what = _caches(n)
    caches = [memexport.cache(c, name=f"cache{i}", registry=reg) for i, c in enumerate(bare)]
    for c in caches:
        c["k1"]  # a hit
        c.get("absent")  # a miss
    return compat.prometheus_registry(reg), reg, caches, what


def _sessions(n: int) -> tuple[Any, Any, list[Any], str]:
    import memexport

    reg = compat.new_registry()
    cls = compat.guide().MemoryEfficientConversationManager
    keep = []
    for _ in range(n):
        m = memexport.conversation(cls(), name="sessions", registry=reg)
        for _ in range(10):
            m.add_message({"role": "user", "content": "status of order 1234?",
                           "timestamp": 1.0})
        keep.append(m)
    return compat.prometheus_registry(reg), reg, keep, "guide conversation managers"


def _mirror(n: int, text: str) -> tuple[Any, Any, list[Any], str]:
    """prometheus_client metrics exposing the same samples as ``text`` (gauges, counters)."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics
    from prometheus_client.parser import text_string_to_metric_families

    disable_created_metrics()  # type: ignore[no-untyped-call]
    prom = CollectorRegistry()
    bare, what = _caches(n)
    for fam in text_string_to_metric_families(text):
        labels = sorted({k for s in fam.samples for k in s.labels})
        if fam.type == "counter":
            c = Counter(fam.name, fam.documentation, labels, registry=prom)
            for s in fam.samples:
                child = c.labels(**s.labels) if labels else c
                child.inc(s.value)
        elif fam.type == "gauge":
            g = Gauge(fam.name, fam.documentation, labels, registry=prom)
            for s in fam.samples:
                (g.labels(**s.labels) if labels else g).set(s.value)
        else:
            raise ValueError(f"the mirror has no {fam.type} (family {fam.name})")
    return prom, None, bare, what


def _samples(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def _scrape(prom: Any) -> tuple[int, str]:
    from prometheus_client import generate_latest

    t0 = time.thread_time_ns()
    body = generate_latest(prom)
    return time.thread_time_ns() - t0, body.decode()


def run(spec: dict[str, Any]) -> dict[str, Any]:
    side, n, rounds = spec["side"], int(spec["n"]), int(spec["rounds"])
    if side == "memexport":
        prom, reg, keep, what = _memexport(n)
    elif side == "sessions":
        prom, reg, keep, what = _sessions(n)
    else:
        with open(spec["mirror_of"], encoding="utf-8") as f:
            prom, reg, keep, what = _mirror(n, f.read())
    gc.collect()
    first, text = _scrape(prom)
    settled = ""
    if reg is not None:  # the steady state: sizes taken, as after a while of collector ticks
        ticks, coverage = compat.settle_sizes(reg)
        settled = f"{ticks} tick-job rounds to coverage {coverage}"
        text = _scrape(prom)[1]
        if _samples(_scrape(prom)[1]) != _samples(text):
            raise RuntimeError("the exposition still changes after the sizes settled")
        gc.collect()
    on = [_scrape(prom)[0] for _ in range(rounds)]
    gc.collect()
    gc.disable()
    try:
        off = [_scrape(prom)[0] for _ in range(rounds)]
    finally:
        gc.enable()
    with open(spec["out"], "w", encoding="utf-8") as f:
        f.write(text)
    del keep
    return {"first": first, "gc_on": on, "gc_off": off, "what": what, "settled": settled}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    json.dump(run(json.loads(args[0])), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
