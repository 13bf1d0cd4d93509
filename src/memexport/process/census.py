"""An optional type census: live GC-tracked objects per type, the growing types exported.

Off by default (``start_collector(census=True)``): ``gc.get_objects()`` lists every tracked
object, which costs about 30-100 ms per million objects and briefly a list of them all. The
count is done in time-boxed chunks (past the deadline the rest is left out and the counts
scaled up from the share counted); types are ranked by sustained growth (``GrowthRanker``),
objgraph-style, and only the top few are exported, plus ``__overflow__``.
"""

from __future__ import annotations

import gc
import time
from collections import Counter

from memexport.core.model import Family
from memexport.process.suspects import GrowthRanker

__all__ = ["TypeCensus"]

_CHUNK = 100_000


def _type_name(t: type) -> str:
    module = getattr(t, "__module__", None) or "?"
    name = f"{t.__qualname__}" if module == "builtins" else f"{module}.{t.__qualname__}"
    return name[:128]


class TypeCensus:
    """Counts live objects per type on each ``read`` (collector thread only)."""

    def __init__(self, top: int = 10, windows: int = 3) -> None:
        self.ranker = GrowthRanker(top=top, windows=windows, cap=2000)
        self.coverage = 1.0

    def read(self, budget_seconds: float) -> dict[str, float]:
        """Objects per type name now (scaled up if the time box cut the count short)."""
        deadline = time.perf_counter() + budget_seconds
        objs = gc.get_objects()
        n = len(objs)
        counts: Counter[type] = Counter()
        done = 0
        try:
            while done < n:
                end = min(n, done + _CHUNK)
                counts.update(map(type, objs[done:end]))
                done = end
                if time.perf_counter() > deadline:
                    break
        finally:
            del objs  # never keep the app's objects alive past the count
        scale = n / done if done else 0.0
        self.coverage = done / n if n else 1.0
        out: dict[str, float] = {}
        for t, c in counts.items():  # no cache of names: it would keep the types alive
            name = _type_name(t)
            out[name] = out.get(name, 0.0) + c * scale
        del counts
        self.ranker.update(out)
        return out

    def families(self) -> list[Family]:
        objects = Family("memexport_type_objects", "gauge",
                         "Live GC-tracked objects of the types that grew in several consecutive "
                         "collector ticks (type census, opt-in; top N, rest in __overflow__).")
        growth = Family("memexport_type_growth_objects", "gauge",
                        "Growth in live objects of those types since their growth began.")
        for name, grown, value in self.ranker.suspects():
            objects.add({"type": name}, value)
            growth.add({"type": name}, grown)
        return [objects, growth]
