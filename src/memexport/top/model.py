"""What ``memexport top`` shows, read from /metrics: one ``Snapshot`` per target per scrape.

Pure parsing and arithmetic on the text exposition (prometheus_client's parser), so the views
and the tests share it; growth is the change between two snapshots of the same target.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["COMPONENT_BYTES", "LEDGER_CLASSES", "Component", "Snapshot", "components", "fetch",
           "parse"]

#: The ledger's classes in stacking order (as memexport.process.ledger.CLASSES).
LEDGER_CLASSES = ("file", "components", "python_objects", "malloc_used", "pymalloc_free",
                  "malloc_free", "unattributed")
#: Per-kind byte gauges: metric -> (kind, name label).
COMPONENT_BYTES = {
    "memexport_cache_bytes": ("cache", "cache"),
    "memexport_conversation_bytes": ("conversation", "conversation"),
    "memexport_agent_memory_bytes": ("agent", "agent"),
}
MAX_BODY = 32 << 20


@dataclass
class Component:
    kind: str
    name: str
    bytes: float
    growth: float | None = None  # bytes per second since the previous snapshot


@dataclass
class Snapshot:
    """One scrape of one target; ``error`` set (and the rest empty) when it failed."""

    url: str
    taken: float
    error: str | None = None
    rss: float | None = None
    limit: float | None = None
    limit_source: str | None = None
    ledger: dict[str, float] = field(default_factory=dict)
    components: list[Component] = field(default_factory=list)
    hit_ratios: list[tuple[str, float, float]] = field(default_factory=list)  # name, ratio, n
    pools: list[tuple[str, float, float]] = field(default_factory=list)  # name, in use, max
    sites: list[tuple[str, float]] = field(default_factory=list)  # site, bytes
    growing_sites: list[tuple[str, float]] = field(default_factory=list)  # site, growth

    @property
    def ledger_total(self) -> float:
        return sum(self.ledger.values())


def parse(url: str, text: str, taken: float, previous: Snapshot | None = None) -> Snapshot:
    """A snapshot from exposition ``text``; growth against ``previous`` of the same target."""
    snap = Snapshot(url=url, taken=taken)
    requests: dict[str, dict[str, float]] = {}
    pool_use: dict[str, float] = {}
    pool_max: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            name, labels, value = s.name, s.labels, float(s.value)
            if name == "process_resident_memory_bytes":
                snap.rss = value
            elif name == "memexport_process_memory_limit_bytes":
                snap.limit, snap.limit_source = value, labels.get("source")
            elif name == "memexport_memory_ledger_bytes":
                snap.ledger[labels.get("class", "?")] = value
            elif name in COMPONENT_BYTES:
                kind, label = COMPONENT_BYTES[name]
                snap.components.append(Component(kind, labels.get(label, "?"), value))
            elif name == "memexport_cache_requests_total":
                requests.setdefault(labels.get("cache", "?"), {})[labels.get("result", "")] = value
            elif name == "memexport_pool_resources" and labels.get("state") == "in_use":
                pool_use[labels.get("pool", "?")] = value
            elif name == "memexport_pool_max_resources":
                pool_max[labels.get("pool", "?")] = value
            elif name == "memexport_tracemalloc_site_bytes":
                snap.sites.append((labels.get("site", "?"), value))
            elif (name == "memexport_tracemalloc_site_growth_bytes"
                  and labels.get("site") != "__overflow__" and value > 0):
                snap.growing_sites.append((labels.get("site", "?"), value))
    for cache, by in sorted(requests.items()):
        hits, misses = by.get("hit", 0.0), by.get("miss", 0.0)
        if hits + misses > 0:
            snap.hit_ratios.append((cache, hits / (hits + misses), hits + misses))
    for pool, used in sorted(pool_use.items()):
        snap.pools.append((pool, used, pool_max.get(pool, float("nan"))))
    snap.sites.sort(key=lambda kv: -kv[1])
    snap.growing_sites.sort(key=lambda kv: -kv[1])
    if previous is not None and previous.error is None and snap.taken > previous.taken:
        dt = snap.taken - previous.taken
        before = {(c.kind, c.name): c.bytes for c in previous.components}
        for c in snap.components:
            old = before.get((c.kind, c.name))
            if old is not None:
                c.growth = (c.bytes - old) / dt
    return snap


def fetch(url: str, timeout: float = 5.0, previous: Snapshot | None = None) -> Snapshot:
    """Scrape ``url`` (``http://host:port`` gets ``/metrics``) into a snapshot; never raises."""
    full = url if "://" in url else f"http://{url}"
    if full.rstrip("/").count("/") <= 2:
        full = full.rstrip("/") + "/metrics"
    taken = time.time()
    try:
        with urllib.request.urlopen(full, timeout=timeout) as resp:
            text = resp.read(MAX_BODY).decode("utf-8", "replace")
        return parse(url, text, taken, previous)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        return Snapshot(url=url, taken=taken, error=f"{type(exc).__name__}: {exc}"[:200])


def components(snaps: Iterable[Snapshot], sort: str, text_filter: str) -> list[
        tuple[str, Component]]:
    """(target, component) over ``snaps``, filtered by substring, sorted by bytes, growth or
    name."""
    rows = [(s.url, c) for s in snaps for c in s.components
            if not text_filter or text_filter.lower() in f"{c.kind} {c.name}".lower()]
    if sort == "growth":
        rows.sort(key=lambda r: (r[1].growth is None, -(r[1].growth or 0.0), r[1].name))
    elif sort == "name":
        rows.sort(key=lambda r: (r[1].kind, r[1].name, r[0]))
    else:
        rows.sort(key=lambda r: (-r[1].bytes, r[1].name))
    return rows
