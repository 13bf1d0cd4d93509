"""GC pauses: a ``gc.callbacks`` hook timing each collection into a histogram per generation."""

from __future__ import annotations

import gc
import time
from typing import Any

from memexport.core.counters import Histogram
from memexport.core.model import Family

__all__ = ["GC_PAUSE_BUCKETS", "GCPauses"]

#: Names of the metrics this module exports (the shipped dashboards read them).
GC_PAUSE = "memexport_gc_pause_seconds"

#: Histogram bounds for GC pauses: young collections take microseconds, full ones up to seconds.
GC_PAUSE_BUCKETS: tuple[float, ...] = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)
_GENERATIONS = ("0", "1", "2")


class GCPauses:
    """Times garbage collections while installed; lock-free, the callback never raises."""

    def __init__(self) -> None:
        self._hists = {g: Histogram(GC_PAUSE_BUCKETS) for g in _GENERATIONS}
        self._t0 = 0.0
        self.installed = False

    def install(self) -> None:
        if not self.installed:
            gc.callbacks.append(self.on_gc)
            self.installed = True

    def remove(self) -> None:
        if self.installed:
            self.installed = False
            try:
                gc.callbacks.remove(self.on_gc)
            except ValueError:
                pass

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        """``gc.callbacks`` hook: time each collection."""
        try:
            if phase == "start":
                self._t0 = time.perf_counter()
            elif self._t0:
                elapsed = time.perf_counter() - self._t0
                self._t0 = 0.0
                hist = self._hists.get(str(info.get("generation")))
                if hist is not None:
                    hist.observe(elapsed)
        except Exception:  # pragma: no cover - a GC callback must not raise
            pass

    def families(self) -> list[Family]:
        """The pause histogram, while installed (read live: cheap)."""
        if not self.installed:
            return []
        hist = Family(GC_PAUSE, "histogram",
                      "Time each garbage collection took, by generation.", "seconds")
        for gen, h in self._hists.items():
            hist.add({"generation": gen}, h.value())
        return [hist]
