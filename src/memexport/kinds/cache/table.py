"""The cache kind's table: its metrics, hot-path events and validated options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from memexport.core.checks import cached_options, shown
from memexport.core.counters import Counter
from memexport.core.model import Kind, MetricDef
from memexport.core.registry import REGISTRY
from memexport.core.sizing import Sizer, entry_size
from memexport.instrument.events import Events, Handles, add, count
from memexport.instrument.readers import reader_from

__all__ = ["BYTES", "CAPACITY", "EVENTS", "EVICTED_BYTES", "EVICTIONS", "EXPIRED", "EXPLICIT",
           "ITEMS", "KIND", "MAX_BYTES", "MAX_ITEMS", "PUTS", "REASONS", "REQUESTS",
           "CacheHandles", "CacheOptions", "options"]

ITEMS = "memexport_cache_items"
BYTES = "memexport_cache_bytes"
MAX_ITEMS = "memexport_cache_max_items"
MAX_BYTES = "memexport_cache_max_bytes"
REQUESTS = "memexport_cache_requests_total"
PUTS = "memexport_cache_puts_total"
EVICTIONS = "memexport_cache_evictions_total"
EVICTED_BYTES = "memexport_cache_evicted_bytes_total"

KIND = Kind(
    "cache",
    "cache",
    (
        MetricDef(ITEMS, "gauge", "Entries held by the cache."),
        MetricDef(BYTES, "gauge",
                  "Bytes held by the cache's entries (the cache's own accounting, sizes taken "
                  "at insert, or a deep size sampled by the collector).", "bytes"),
        MetricDef(MAX_ITEMS, "gauge", "Capacity of the cache in entries; absent when unbounded."),
        MetricDef(MAX_BYTES, "gauge",
                  "Capacity of the cache in bytes; absent when unbounded.", "bytes"),
        MetricDef(REQUESTS, "counter", "Lookups, by result (hit or miss).", labels=("result",)),
        MetricDef(PUTS, "counter", "Entries stored."),
        MetricDef(EVICTIONS, "counter",
                  "Entries that left the cache, by reason: capacity (the policy made room), "
                  "expired (TTL), explicit (deleted, popped or cleared by the app).",
                  labels=("reason",)),
        MetricDef(EVICTED_BYTES, "counter",
                  "Bytes of the entries that left the cache.", "bytes"),
    ),
    bytes_metric=BYTES,
)
REGISTRY.add_kind(KIND)

#: The values of the ``reason`` label.
CAPACITY, EXPIRED, EXPLICIT = "capacity", "expired", "explicit"
REASONS = (CAPACITY, EXPIRED, EXPLICIT)

#: Attribute names read as a capacity in entries / bytes / MiB when nothing else says.
CAPACITY_ATTRS = ("maxsize", "max_items", "max_size", "max_entries", "capacity", "maxlen")
BYTES_LIMIT_ATTRS = ("max_bytes", "max_memory_bytes", "max_size_bytes")
MIB_LIMIT_ATTRS = ("max_memory_mb", "max_mb", "max_memory_mib")

_SIZERS = ("auto", "sampled", "entry", "own")



class CacheHandles(Handles):
    """A cache name's hot-path callables, and the estimate of evicted bytes of unknown size.

    Evictions whose bytes are unknown (sampled sizes) are counted in ``unsized``; each time a
    member of the name is sized, those since the last time become bytes at the mean entry
    size (an estimate; exact bytes come from a cache's own accounting or ``sizer='entry'``).
    """

    __slots__ = ("_converted", "_unsized", "unsized")

    hit: Callable[[], int]
    miss: Callable[[], int]
    put: Callable[[], int]
    capacity: Callable[[], int]
    expired: Callable[[], int]
    explicit: Callable[[], int]
    evicted_bytes: Callable[[float], None]

    def setup(self) -> None:
        self._unsized = Counter()
        self.unsized: Callable[[], int] = self._unsized.inc
        self._converted = 0

    def evicted(self, inc: Callable[[], int], n: int, nbytes: float | None = None) -> None:
        """Count ``n`` entries gone for one reason, and their bytes when known exactly."""
        for _ in range(n):
            inc()
        if nbytes is None:
            unsized = self.unsized
            for _ in range(n):
                unsized()
        elif nbytes > 0:
            self.evicted_bytes(nbytes)

    def sized(self, mean_entry_bytes: float) -> None:
        total = self._unsized.value()
        delta = total - self._converted
        if delta > 0:
            self._converted = total
            self.evicted_bytes(delta * mean_entry_bytes)


EVENTS = Events(
    KIND, CacheHandles,
    hit=count(REQUESTS, "hit"), miss=count(REQUESTS, "miss"), put=count(PUTS),
    capacity=count(EVICTIONS, CAPACITY), expired=count(EVICTIONS, EXPIRED),
    explicit=count(EVICTIONS, EXPLICIT), evicted_bytes=add(EVICTED_BYTES),
)


@dataclass(frozen=True)
class CacheOptions:
    """The explicit arguments of one ``memexport.cache`` call, validated."""

    sizer: str = "auto"  # auto, sampled, entry, own, none
    entry_sizer: Sizer | None = None
    items: Callable[[Any], Any] | None = None
    bytes: Callable[[Any], Any] | None = None
    max_items: Callable[[Any], Any] | None = None
    max_bytes: Callable[[Any], Any] | None = None
    lookups: tuple[str, ...] = ()
    stores: tuple[str, ...] = ()
    miss: Any = field(default=None, compare=False, hash=False)
    miss_id: int = id(None)

    @property
    def methods_given(self) -> bool:
        return bool(self.lookups or self.stores)

    def __hash__(self) -> int:
        # Hashed once: options key the plan, profile and class caches of every instrument.
        try:
            return self.__dict__["_hash"]  # type: ignore[no-any-return]
        except KeyError:
            h = hash(tuple(getattr(self, f.name) for f in _COMPARED))
            object.__setattr__(self, "_hash", h)
            return h


#: The fields equality compares (and so the hash covers).
_COMPARED = tuple(f for f in fields(CacheOptions) if f.compare)

#: The options of ``memexport.cache(obj, name)`` with no other argument (the usual call: it
#: skips the validator, whose keyword call costs more than a cache's whole registration).
DEFAULT_OPTIONS = CacheOptions()


def _sizer_mode(sizer: Any) -> tuple[str, Sizer | None]:
    if sizer is None:
        return "none", None
    if isinstance(sizer, str) and sizer in _SIZERS:
        return sizer, (entry_size if sizer == "entry" else None)
    if callable(sizer) and not isinstance(sizer, str):
        return "entry", sizer
    raise ValueError(f"sizer={shown(sizer)}: use one of {_SIZERS}, None, or a callable "
                     f"(key, value) -> bytes")


def _names(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    out = (value,) if isinstance(value, str) else tuple(value)
    for n in out:
        if not isinstance(n, str) or not n.isidentifier():
            raise ValueError(f"{what}={shown(value)}: give method names")
    return out


@cached_options
def options(*, sizer: Any = "auto", items: Any = None, bytes: Any = None,
            max_items: Any = None, max_bytes: Any = None, lookups: Any = None,
            stores: Any = None, miss: Any = None) -> CacheOptions:
    """Validate ``memexport.cache``'s keyword arguments (ValueError naming a bad one)."""
    mode, entry = _sizer_mode(sizer)
    return CacheOptions(mode, entry, reader_from(items, "items"), reader_from(bytes, "bytes"),
                        reader_from(max_items, "max_items"), reader_from(max_bytes, "max_bytes"),
                        _names(lookups, "lookups"), _names(stores, "stores"), miss, id(miss))
