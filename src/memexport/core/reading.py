"""Reading one group at a scrape: what its live members' readers return, folded into rows
(sums, maxes, sampled sizes, counters, histograms) written to a sink. Called by the registry
with the snapshot it took under its lock; runs outside it, as user readers may be slow.

A sink is where a collection goes: ``FamilySink`` builds the neutral families every exporter
reads (``Registry.collect()``); ``memexport.exporters.text`` renders the same rows straight
into exposition text, so a scrape allocates no label dict or sample object per series.
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple, Protocol

from memexport.core import sizing
from memexport.core.component import Component, Group, Key, number, resolve_profile
from memexport.core.counters import Adder, Counter, Histogram, HistogramValue
from memexport.core.errors import ErrorLog
from memexport.core.model import Family, Kind, LabelValues, MetricType

__all__ = ["FamilySink", "GroupSnapshot", "Sink", "read_group"]


class GroupSnapshot(NamedTuple):
    """What a collection reads of one group, taken under the registry lock."""

    group: Group
    live: list[tuple[Component, Any]]
    retired: dict[Key, float]
    counters: list[tuple[Key, Counter]]
    adders: list[tuple[Key, Adder]]
    histograms: list[tuple[Key, Histogram]]
    created: int
    finalized: int


class Sink(Protocol):
    """Where a collection writes: families declared in order, then rows and whole families."""

    def declare(self, name: str, type: MetricType, help: str, unit: str) -> None:
        """A family that rows may name (kinds' metrics, budgets), in exposition order."""

    def row(self, metric: str, kind: Kind, name: str, values: LabelValues,
            value: float | HistogramValue) -> None:
        """One series of a declared family: the kind's label is ``name``, the metric's own
        labels (``kind.by_name[metric].labels``, none for a budget) are ``values``."""

    def family(self, family: Family) -> None:
        """A whole family from a source (the process collector, memexport's own)."""


class FamilySink:
    """Collects into ``Family`` objects (``Registry.collect()``'s result)."""

    def __init__(self) -> None:
        self.families: list[Family] = []
        self._by_name: dict[str, Family] = {}

    def declare(self, name: str, type: MetricType, help: str, unit: str) -> None:
        fam = Family(name, type, help, unit)
        self.families.append(fam)
        self._by_name[name] = fam

    def row(self, metric: str, kind: Kind, name: str, values: LabelValues,
            value: float | HistogramValue) -> None:
        labels = {kind.label: name}
        if values:
            labels.update(zip(kind.by_name[metric].labels, values, strict=True))
        self._by_name[metric].samples.append((labels, value))

    def family(self, family: Family) -> None:
        self.families.append(family)


def read_group(sink: Sink, snap: GroupSnapshot, errors: ErrorLog,
               first_reads_until: float) -> None:
    """Read one group's snapshot into ``sink``: member gauges summed (or max'ed),
    sampled sizes (taken now within ``first_reads_until`` where no tick took them),
    counters with the retired members' totals, histograms, group gauges."""
    group, live = snap.group, snap.live
    kind = group.kind
    gauges: dict[Key, list[float]] = {}
    failed: set[Key] = set()
    counters = snap.retired
    for key, c in snap.counters:
        counters[key] = counters.get(key, 0.0) + c.value()
    for key, a in snap.adders:
        counters[key] = counters.get(key, 0.0) + a.value()
    hists = {key: h.value() for key, h in snap.histograms}
    bytes_key: Key | None = (kind.bytes_metric, ()) if kind.bytes_metric else None
    sized: list[float] = []
    unsized = 0
    for comp, obj in live:
        if comp.profile.resolve is not None:
            resolve_profile(comp, obj, errors)
        own_bytes = False
        for key, reader in comp.profile.readers.items():
            try:
                v = reader(obj)
                if v is None:
                    continue
                v = number(v)  # a reader returning a list or a str fails here, counted
            except (Exception, SystemExit) as exc:  # user code: never ends a scrape
                errors.record(kind.name, comp.source(key), exc)
                failed.add(key)
                continue
            if math.isfinite(v):
                gauges.setdefault(key, []).append(v)
                own_bytes = own_bytes or key == bytes_key
        if comp.profile.size is not None and not own_bytes:
            size = comp.size
            if size is None and time.perf_counter() < first_reads_until:
                try:
                    size = sizing.refresh(comp, obj, first_reads_until)
                except (Exception, SystemExit) as exc:
                    errors.record(kind.name, comp.source(bytes_key or ("", ())), exc)
                    failed.add(bytes_key)  # type: ignore[arg-type]
            if size is None:
                unsized += 1
            else:
                sized.append(size)
        for key, creader in comp.profile.with_comp.items():
            try:
                v = creader(obj, comp)
                if v is None:
                    continue
                v = number(v)
            except (Exception, SystemExit) as exc:
                errors.record(kind.name, comp.source(key), exc)
                failed.add(key)
                continue
            if math.isfinite(v):
                gauges.setdefault(key, []).append(v)
        pulled = comp.profile.pulled
        for i in range(len(pulled)):
            key = pulled[i][0]
            counters[key] = counters.get(key, 0.0) + comp.read_pulled(i, obj, errors)
    if bytes_key is not None and sized:
        if unsized:  # members not sized yet: as big as the sized ones, on average
            sized.append(sum(sized) / len(sized) * unsized)
        gauges.setdefault(bytes_key, []).extend(sized)
    for key, read in list(group.gauges.items()):
        try:
            v = read()
        except Exception as exc:
            errors.record(kind.name, f"{kind.name} {group.name!r} {key[0]}", exc)
            continue
        if v is not None and math.isfinite(v):
            gauges[key] = [float(v)]
    name = group.name
    by_name = kind.by_name
    row = sink.row
    for m in kind.metrics:
        if m.source == "live":
            row(m.name, kind, name, (), float(len(live)))
        elif m.source == "created":
            row(m.name, kind, name, (), float(snap.created))
        elif m.source == "finalized":
            row(m.name, kind, name, (), float(snap.finalized))
    for key, vs in sorted(gauges.items()):
        if key in failed:  # a partial sum would be a made-up value: leave it absent
            continue
        agg = sum(vs) if by_name[key[0]].agg == "sum" else max(vs)
        row(key[0], kind, name, key[1], agg)
    for key, v in sorted(counters.items()):
        row(key[0], kind, name, key[1], v)
    for key, hv in sorted(hists.items(), key=lambda kv: kv[0]):
        row(key[0], kind, name, key[1], hv)
