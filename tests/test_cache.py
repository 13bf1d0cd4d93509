"""memexport.cache: exact counts for every supported kind, scraped through prometheus_client."""

from __future__ import annotations

import copy
import functools
import gc
import pickle
import threading
import weakref
from collections import OrderedDict, defaultdict
from collections.abc import Iterator, MutableMapping
from typing import Any

import cachetools
import pytest
from helpers import Samples, exposition, guide, samples, view

import memexport
from memexport.core.registry import Registry
from memexport.kinds.cache import KIND


def scrape(reg: Registry) -> Samples:
    return samples(reg)


def cache_view(reg: Registry, name: str) -> dict[str, float]:
    """The samples of cache ``name``, keyed ``metric`` or ``metric{label}``."""
    return view(reg, "cache", name)


def counts(view: dict[str, float]) -> dict[str, float]:
    """Just the counters and items of a view (bytes are checked separately)."""
    keys = ("memexport_cache_requests_total{hit}", "memexport_cache_requests_total{miss}",
            "memexport_cache_puts_total", "memexport_cache_evictions_total{capacity}",
            "memexport_cache_evictions_total{expired}",
            "memexport_cache_evictions_total{explicit}", "memexport_cache_items",
            "memexport_cache_max_items", "memexport_cache_max_bytes")
    return {k: view[k] for k in keys if k in view}


@pytest.fixture
def reg() -> Registry:
    return Registry()


# -- dict / OrderedDict / MutableMapping -------------------------------------------------


def test_dict_exact_counts_and_behaviour(reg: Registry) -> None:
    d = memexport.cache({}, name="d", registry=reg)
    assert isinstance(d, dict) and type(d) is not dict  # a dict that counts: json, C paths
    d["a"] = 1
    d["b"] = 2
    d["a"] = 3  # overwrite: a put, no eviction
    assert d["a"] == 3  # hit
    assert d.get("b") == 2  # hit
    assert d.get("zz") is None  # miss
    assert d.get("zz", 7) == 7  # miss
    with pytest.raises(KeyError) as info:
        d["nope"]  # miss, KeyError unchanged
    assert info.value.args == ("nope",)
    assert "a" in d and "q" not in d  # not requests
    assert d.setdefault("a", 0) == 3  # hit
    assert d.setdefault("c", 5) == 5  # miss + put
    d.update({"x": 1, "y": 2}, z=3)  # 3 puts
    del d["x"]  # explicit
    assert d.pop("y") == 2  # explicit
    assert d.pop("nope", None) is None
    with pytest.raises(KeyError):
        d.pop("nope")
    assert d.popitem() == ("z", 3)  # explicit
    # (dict(d) would read every entry through d[key]: lookups like any other)
    assert len(d) == 3 and sorted(d) == ["a", "b", "c"] and d == {"a": 3, "b": 2, "c": 5}
    assert repr(d) == repr({"a": 3, "b": 2, "c": 5})
    view = cache_view(reg, "d")
    assert counts(view) == {
        "memexport_cache_requests_total{hit}": 3,
        "memexport_cache_requests_total{miss}": 4,
        "memexport_cache_puts_total": 7,
        "memexport_cache_evictions_total{capacity}": 0,
        "memexport_cache_evictions_total{expired}": 0,
        "memexport_cache_evictions_total{explicit}": 3,
        "memexport_cache_items": 3,
    }
    d.clear()  # explicit x3
    view = cache_view(reg, "d")
    assert view["memexport_cache_evictions_total{explicit}"] == 6
    assert view["memexport_cache_items"] == 0
    assert view["memexport_cache_bytes"] > 0  # the empty table itself


def test_ordered_dict_and_defaultdict(reg: Registry) -> None:
    od = memexport.cache(OrderedDict(), name="od", registry=reg)
    assert isinstance(od, OrderedDict)
    od["a"] = 1
    od["b"] = 2
    od.move_to_end("a")  # forwarded
    assert list(od) == ["b", "a"]
    assert od.popitem(last=False) == ("b", 2)
    dd = memexport.cache(defaultdict(list), name="dd", registry=reg)
    dd["k"].append(1)  # miss (__missing__ creates it)
    dd["k"].append(2)  # hit
    assert dd["k"] == [1, 2]  # hit
    assert counts(cache_view(reg, "od"))["memexport_cache_evictions_total{explicit}"] == 1
    view = counts(cache_view(reg, "dd"))
    assert view["memexport_cache_requests_total{hit}"] == 2
    assert view["memexport_cache_requests_total{miss}"] == 1


class Store(MutableMapping):
    """A user's MutableMapping (not a dict)."""

    def __init__(self) -> None:
        self._d: dict[Any, Any] = {}

    def __getitem__(self, key: Any) -> Any:
        return self._d[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._d[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._d[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)


def test_mutable_mapping(reg: Registry) -> None:
    s = memexport.cache(Store(), name="store", registry=reg, max_items=10)
    assert isinstance(s, Store)
    s["a"] = 1
    assert s["a"] == 1
    assert s.get("b") is None
    del s["a"]
    view = counts(cache_view(reg, "store"))
    assert view == {
        "memexport_cache_requests_total{hit}": 1,
        "memexport_cache_requests_total{miss}": 1,
        "memexport_cache_puts_total": 1,
        "memexport_cache_evictions_total{capacity}": 0,
        "memexport_cache_evictions_total{expired}": 0,
        "memexport_cache_evictions_total{explicit}": 1,
        "memexport_cache_items": 0,
        "memexport_cache_max_items": 10,
    }


class BoundedDict(OrderedDict):
    """A user's bounded dict: evicts its oldest entry inside its own __setitem__."""

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        if len(self) > 2:
            self.popitem(last=False)


def test_mapping_evicting_in_its_own_setitem(reg: Registry) -> None:
    b = memexport.cache(BoundedDict(), name="bounded", registry=reg, max_items=2)
    for i in range(5):
        b[i] = i  # 3 capacity evictions
    b[4] = "again"  # overwrite: none
    view = counts(cache_view(reg, "bounded"))
    assert view["memexport_cache_evictions_total{capacity}"] == 3
    assert view["memexport_cache_evictions_total{explicit}"] == 0
    assert view["memexport_cache_puts_total"] == 6
    assert view["memexport_cache_items"] == 2


def test_entry_sizer_exact_bytes(reg: Registry) -> None:
    d = memexport.cache({}, name="sized", registry=reg, sizer=lambda k, v: len(v))
    d["a"] = "x" * 100
    d["b"] = "y" * 50
    d["a"] = "z" * 10  # replaces 100 by 10
    view = cache_view(reg, "sized")
    assert view["memexport_cache_bytes"] == 60
    del d["b"]
    d.pop("a")
    view = cache_view(reg, "sized")
    assert view["memexport_cache_bytes"] == 0
    assert view["memexport_cache_evicted_bytes_total"] == 60


# -- cachetools --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [cachetools.LRUCache, cachetools.FIFOCache, cachetools.LFUCache,
                                 cachetools.RRCache, cachetools.Cache])
def test_cachetools_capacity_evictions(reg: Registry, cls: type) -> None:
    c = memexport.cache(cls(maxsize=3), name="ct", registry=reg)
    assert isinstance(c, cls)
    for i in range(5):
        c[i] = str(i)  # 5 puts, 2 capacity evictions
    c[4] = "again"  # overwrite: put, no eviction
    present = [k for k in range(5) if k in c]
    assert len(present) == 3
    assert c[present[0]] is not None  # hit
    assert c.get(present[1]) is not None  # hit
    assert c.get(99) is None  # miss
    with pytest.raises(KeyError):
        c[98]  # miss
    assert c.popitem()[0] in present  # capacity (the policy's choice)
    assert counts(cache_view(reg, "ct")) == {
        "memexport_cache_requests_total{hit}": 2,
        "memexport_cache_requests_total{miss}": 2,
        "memexport_cache_puts_total": 6,
        "memexport_cache_evictions_total{capacity}": 3,
        "memexport_cache_evictions_total{expired}": 0,
        "memexport_cache_evictions_total{explicit}": 0,
        "memexport_cache_items": 2,
        "memexport_cache_max_items": 3,
    }


def test_cachetools_getsizeof_bytes_exact(reg: Registry) -> None:
    c = memexport.cache(cachetools.LRUCache(maxsize=100, getsizeof=len), name="b", registry=reg)
    c["a"] = "x" * 40
    c["b"] = "y" * 40
    c["c"] = "z" * 40  # 120 > 100: evicts "a" (40 bytes)
    c["d"] = "w" * 60  # 140 > 100: evicts "b" (40 bytes)
    view = cache_view(reg, "b")
    assert view["memexport_cache_bytes"] == 100
    assert view["memexport_cache_max_bytes"] == 100
    assert "memexport_cache_max_items" not in view
    assert view["memexport_cache_evictions_total{capacity}"] == 2
    assert view["memexport_cache_evicted_bytes_total"] == 80
    assert view["memexport_cache_items"] == 2
    with pytest.raises(ValueError):
        c["big"] = "x" * 101  # the cache's own error, unchanged
    c.pop("d")
    view = cache_view(reg, "b")
    assert view["memexport_cache_evictions_total{explicit}"] == 1
    assert view["memexport_cache_evicted_bytes_total"] == 140
    assert view["memexport_cache_bytes"] == 40


@pytest.mark.parametrize("kind", ["ttl", "tlru"])
def test_cachetools_ttl_expired(reg: Registry, kind: str) -> None:
    now = [0.0]

    def timer() -> float:
        return now[0]

    if kind == "ttl":
        inner = cachetools.TTLCache(maxsize=10, ttl=10, timer=timer)
    else:
        inner = cachetools.TLRUCache(maxsize=10, ttu=lambda k, v, t: t + 10, timer=timer)
    c = memexport.cache(inner, name="ttl", registry=reg)
    c["a"] = 1
    c["b"] = 2
    now[0] = 5
    c["c"] = 3
    assert c["a"] == 1  # hit
    now[0] = 12  # a and b expired, c not
    with pytest.raises(KeyError):
        c["a"]  # miss: expired
    view = cache_view(reg, "ttl")
    assert view["memexport_cache_items"] == 3  # expired entries stay until a write purges
    c["d"] = 4  # the put purges a and b: expired x2
    assert len(c) == 2
    now[0] = 30
    assert len(c) == 0  # len purges c and d: counted too
    assert counts(cache_view(reg, "ttl")) == {
        "memexport_cache_requests_total{hit}": 1,
        "memexport_cache_requests_total{miss}": 1,
        "memexport_cache_puts_total": 4,
        "memexport_cache_evictions_total{capacity}": 0,
        "memexport_cache_evictions_total{expired}": 4,
        "memexport_cache_evictions_total{explicit}": 0,
        "memexport_cache_items": 0,
        "memexport_cache_max_items": 10,
    }


def test_cachetools_custom_missing(reg: Registry) -> None:
    class Filling(cachetools.LRUCache):
        def __missing__(self, key: Any) -> Any:
            self[key] = value = key * 2
            return value

    c = memexport.cache(Filling(maxsize=10), name="fill", registry=reg)
    assert c[2] == 4  # miss (answered by __missing__)
    assert c[2] == 4  # hit
    view = counts(cache_view(reg, "fill"))
    assert view["memexport_cache_requests_total{hit}"] == 1
    assert view["memexport_cache_requests_total{miss}"] == 1


def test_cachetools_class_decorator(reg: Registry) -> None:
    now = [0.0]

    @memexport.cache(name="deco", registry=reg)
    class Responses(cachetools.TTLCache):
        pass

    a = Responses(maxsize=2, ttl=10, timer=lambda: now[0])
    b = Responses(maxsize=2, ttl=10, timer=lambda: now[0])
    assert type(a) is Responses
    for i in range(3):
        a[i] = i  # 1 capacity eviction (popitem, called by cachetools itself)
    assert a[2] == 2  # hit
    assert a.get(0) is None  # miss
    b["x"] = 1
    now[0] = 20
    b["y"] = 2  # expires x
    assert counts(cache_view(reg, "deco")) == {
        "memexport_cache_requests_total{hit}": 1,
        "memexport_cache_requests_total{miss}": 1,
        "memexport_cache_puts_total": 5,
        "memexport_cache_evictions_total{capacity}": 1,
        "memexport_cache_evictions_total{expired}": 1,
        "memexport_cache_evictions_total{explicit}": 0,
        "memexport_cache_items": 3,  # summed over both instances
        "memexport_cache_max_items": 4,
    }


# -- functools.lru_cache -----------------------------------------------------------------


def test_lru_cache_pull_only_same_object(reg: Registry) -> None:
    calls = []

    @functools.lru_cache(maxsize=2)
    def f(x: int) -> int:
        calls.append(x)
        return x * 10

    same = memexport.cache(f, name="fn", registry=reg)
    assert same is f  # the very same wrapper: zero cost per call
    for x in (1, 2, 1, 3, 4, 1):  # misses 1,2,3,4,1 ; hit 1 ; evictions 3
        f(x)
    assert counts(cache_view(reg, "fn")) == {
        "memexport_cache_requests_total{hit}": 1,
        "memexport_cache_requests_total{miss}": 5,
        "memexport_cache_puts_total": 5,
        "memexport_cache_evictions_total{capacity}": 3,  # misses - currsize
        "memexport_cache_items": 2,
        "memexport_cache_max_items": 2,
    }
    f.cache_clear()  # the wrapper's numbers reset; the exported ones carry on
    f(9)
    view = counts(cache_view(reg, "fn"))
    assert view["memexport_cache_requests_total{miss}"] == 6
    assert view["memexport_cache_evictions_total{capacity}"] == 3
    assert view["memexport_cache_items"] == 1
    assert memexport.cache(f, name="fn", registry=reg) is f  # idempotent
    with pytest.raises(ValueError, match="already instrumented"):
        memexport.cache(f, name="other", registry=reg)


def test_functools_cache_unbounded(reg: Registry) -> None:
    @functools.cache
    def g(x: int) -> list[int]:
        return [x] * 100

    memexport.cache(g, name="g", registry=reg)
    for x in (1, 2, 1):
        g(x)
    view = cache_view(reg, "g")
    assert "memexport_cache_max_items" not in view
    assert "memexport_cache_evictions_total{capacity}" not in view
    assert view["memexport_cache_items"] == 2
    assert view["memexport_cache_bytes"] > 2 * 800  # two lists of 100 pointers, deep


# -- get/put classes ---------------------------------------------------------------------


MemoryBoundedLRUCache = guide.MemoryBoundedLRUCache  # the guide's own class


def test_guide_test_memory_bounded_cache_through_metrics(reg: Registry) -> None:
    """The guide's test_memory_bounded_cache, asserted on /metrics instead of attributes:
    a 1 MB / 10-item cache given 20 items of 100 KB keeps 10 and evicts the rest."""
    cache = memexport.cache(MemoryBoundedLRUCache(max_memory_mb=1, max_items=10),
                            name="guide", registry=reg)
    for i in range(20):
        cache.put(f"key_{i}", "x" * 100_000)
    assert cache.get("key_19") is not None  # hit
    assert cache.get("key_0") is None  # miss: evicted
    view = cache_view(reg, "guide")
    assert counts(view) == {
        "memexport_cache_requests_total{hit}": 1,
        "memexport_cache_requests_total{miss}": 1,
        "memexport_cache_puts_total": 20,
        "memexport_cache_evictions_total{capacity}": 10,
        "memexport_cache_evictions_total{expired}": 0,
        "memexport_cache_evictions_total{explicit}": 0,
        "memexport_cache_items": 10,
        "memexport_cache_max_items": 10,
        "memexport_cache_max_bytes": 1024 * 1024,
    }
    # The guide's own check, `memory_usage <= max_memory_mb`, compares bytes with MB; the
    # exported figures compare like with like: 10 strings of 100 KB, deep-sized.
    assert 10 * 100_000 <= view["memexport_cache_bytes"] <= 1.1 * 10 * 100_049 + 4096
    assert view["memexport_cache_bytes"] <= view["memexport_cache_max_bytes"]


def test_get_put_class_decorator(reg: Registry) -> None:
    Decorated = memexport.cache(name="deco_gp", registry=reg)(
        type("Decorated", (MemoryBoundedLRUCache,), {}))
    a = Decorated(max_items=2)
    assert type(a).__name__ == "Decorated"
    for i in range(3):
        a.put(i, "v")  # 1 eviction
    assert a.get(2) == "v"
    assert a.get(0) is None
    assert counts(cache_view(reg, "deco_gp")) == {
        "memexport_cache_requests_total{hit}": 1,
        "memexport_cache_requests_total{miss}": 1,
        "memexport_cache_puts_total": 3,
        "memexport_cache_evictions_total{capacity}": 1,
        "memexport_cache_evictions_total{expired}": 0,
        "memexport_cache_evictions_total{explicit}": 0,
        "memexport_cache_items": 2,
        "memexport_cache_max_items": 2,
        "memexport_cache_max_bytes": 50 * 2**20,
    }


class Lookup:
    """Neither a mapping nor get/put: explicit arguments name its parts."""

    def __init__(self) -> None:
        self.table: dict[str, str] = {}
        self.limit = 5

    def fetch(self, key: str) -> str | None:
        return self.table.get(key)

    def store(self, key: str, value: str) -> None:
        self.table[key] = value


def test_explicit_arguments(reg: Registry) -> None:
    c = memexport.cache(Lookup(), name="explicit", registry=reg, lookups="fetch",
                        stores=("store",), items=lambda o: len(o.table), max_items="limit",
                        bytes=lambda o: 100 * len(o.table))
    c.store("a", "1")
    assert c.fetch("a") == "1"
    assert c.fetch("b") is None
    view = cache_view(reg, "explicit")
    assert view["memexport_cache_requests_total{hit}"] == 1
    assert view["memexport_cache_requests_total{miss}"] == 1
    assert view["memexport_cache_puts_total"] == 1
    assert view["memexport_cache_items"] == 1
    assert view["memexport_cache_max_items"] == 5
    assert view["memexport_cache_bytes"] == 100


def test_unrecognised_objects_get_a_type_error_saying_what_to_pass(reg: Registry) -> None:
    with pytest.raises(TypeError, match=r"lookups=.*stores=.*items="):
        memexport.cache(object.__new__(type("Opaque", (), {})), name="x", registry=reg)
    with pytest.raises(TypeError, match="lookups="):
        memexport.cache(name="y", registry=reg)(type("OpaqueClass", (), {}))


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "bad name"}, "bad name"),
    ({"name": "ok", "sizer": "fast"}, "'fast'"),
    ({"name": "ok", "max_items": -1}, "-1"),
    ({"name": "ok", "items": True}, "True"),
    ({"name": "ok", "lookups": ("not a name",)}, "not a name"),
])
def test_bad_arguments_raise_value_error_naming_them(reg: Registry, kwargs: dict[str, Any],
                                                     match: str) -> None:
    with pytest.raises(ValueError, match=match):
        memexport.cache({}, registry=reg, **kwargs)


# -- class decorator on dict -------------------------------------------------------------


SESSIONS_REG = Registry()


@memexport.cache(name="sessions", registry=SESSIONS_REG)
class SessionCache(dict):
    """The issue's example: every instance of a dict subclass instrumented."""


def test_dict_class_decorator_counts_every_instance() -> None:
    reg = SESSIONS_REG
    a, b = SessionCache(), SessionCache(x=1)
    assert type(a) is SessionCache and isinstance(b, dict) and b == {"x": 1}
    a["k"] = 1
    a.update(j=2)
    assert a["k"] == 1 and b.get("x") == 1  # 2 hits
    assert a.get("nope") is None  # miss
    with pytest.raises(KeyError):
        b["nope"]  # miss
    del a["k"]  # explicit
    clone = pickle.loads(pickle.dumps(b))
    assert type(clone) is SessionCache and clone == {"x": 1}  # unpickling stores: 1 put
    assert copy.deepcopy(a) == {"j": 2}  # 1 put
    view = counts(cache_view(reg, "sessions"))
    assert view["memexport_cache_requests_total{hit}"] == 2
    assert view["memexport_cache_requests_total{miss}"] == 2
    assert view["memexport_cache_puts_total"] == 4
    assert view["memexport_cache_evictions_total{explicit}"] == 1
    assert view["memexport_cache_items"] == 3  # a, b and the clone (the deepcopy is gone)
    del a, b, clone
    gc.collect()
    assert "memexport_cache_items" not in cache_view(reg, "sessions")


# -- caches tracked in place: pickling, copying, lifetime ---------------------------------


def test_tracked_cache_pickles_and_copies_as_its_class(reg: Registry) -> None:
    c = memexport.cache(cachetools.LRUCache(maxsize=4), name="p", registry=reg)
    c["a"] = [1, 2]
    assert isinstance(c, cachetools.LRUCache) and type(c).__name__ == "LRUCache"
    for clone in (pickle.loads(pickle.dumps(c)), copy.copy(c), copy.deepcopy(c)):
        assert type(clone) is cachetools.LRUCache
        assert dict(clone) == {"a": [1, 2]}
        clone["b"] = 1  # a copy counts nothing
    assert cache_view(reg, "p")["memexport_cache_puts_total"] == 1
    d = memexport.cache({"a": 1}, name="pd", registry=reg)
    assert type(pickle.loads(pickle.dumps(d))) is dict
    assert type(copy.copy(d)) is dict


def test_dropped_cache_is_collected_and_leaves_the_scrape_counters_stay(reg: Registry) -> None:
    keep = memexport.cache(cachetools.LRUCache(maxsize=10), name="g", registry=reg)
    drop = memexport.cache(cachetools.LRUCache(maxsize=10), name="g", registry=reg)
    keep["a"] = 1
    for i in range(3):
        drop[i] = i
    drop.get(0)
    assert cache_view(reg, "g")["memexport_cache_items"] == 4
    ref = weakref.ref(drop)
    del drop
    assert ref() is None  # freed at once, not at the next GC pass
    view = cache_view(reg, "g")
    assert view["memexport_cache_items"] == 1
    assert view["memexport_cache_puts_total"] == 4
    assert view["memexport_cache_requests_total{hit}"] == 1
    del keep
    gc.collect()
    view = cache_view(reg, "g")
    assert "memexport_cache_items" not in view
    assert view["memexport_cache_puts_total"] == 4


def test_detached_method_outlives_the_proxy(reg: Registry) -> None:
    get = memexport.cache({"a": 1}, name="detached", registry=reg).get
    gc.collect()
    assert get("a") == 1 and get("b") is None


def test_kind_is_declared_for_budgets() -> None:
    assert KIND in memexport.REGISTRY.kinds()
    memexport.budget(1 << 20, kind="cache", name="budgeted")
    reg_samples = scrape(memexport.REGISTRY)
    assert reg_samples[("memexport_cache_budget_bytes", (("cache", "budgeted"),))] == 1 << 20
    memexport.REGISTRY.clear_budget("cache", "budgeted")


# -- threads -----------------------------------------------------------------------------


def test_eight_threads_lose_no_count(reg: Registry) -> None:
    """8 threads x 100k lookups (and puts on misses) on one cachetools cache: every event
    counted."""
    c = memexport.cache(cachetools.LRUCache(maxsize=64), name="hammer", registry=reg)
    lock = threading.Lock()  # cachetools is not thread-safe; the counters need no lock
    n = 100_000
    start = threading.Barrier(8)

    def work(t: int) -> None:
        start.wait()
        get = c.get
        for i in range(n):
            key = (t * 7 + i) % 128
            with lock:
                if get(key) is None:
                    c[key] = i

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    view = cache_view(reg, "hammer")
    hits = view["memexport_cache_requests_total{hit}"]
    misses = view["memexport_cache_requests_total{miss}"]
    assert hits + misses == 8 * n
    assert view["memexport_cache_puts_total"] == misses
    assert view["memexport_cache_evictions_total{capacity}"] == misses - 64
    assert view["memexport_cache_items"] == 64


def test_eight_threads_on_a_dict_lose_no_count(reg: Registry) -> None:
    d = memexport.cache({}, name="hammer_dict", registry=reg)
    n = 100_000
    start = threading.Barrier(8)

    def work(t: int) -> None:
        start.wait()
        for i in range(n):
            d[(t, i % 50)] = i
            d.get((t, i % 100))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    view = cache_view(reg, "hammer_dict")
    assert view["memexport_cache_puts_total"] == 8 * n
    assert view["memexport_cache_requests_total{hit}"] + view[
        "memexport_cache_requests_total{miss}"] == 8 * n


def test_mapping_capacity_is_read_from_its_attributes() -> None:
    class Bounded(dict):
        maxsize = 3

    reg = Registry()
    kept = memexport.cache(Bounded(), name="bounded", registry=reg)
    assert 'memexport_cache_max_items{cache="bounded"} 3.0' in exposition(reg)
    del kept


def test_cachetools_cache_is_tracked_in_place_and_moves_back(reg: Registry) -> None:
    raw = cachetools.LRUCache(maxsize=2)
    c = memexport.cache(raw, name="inplace", registry=reg)
    assert c is raw and type(c) is not cachetools.LRUCache
    assert type(cachetools.LRUCache(maxsize=2)) is cachetools.LRUCache  # others untouched
    c["a"] = 1
    assert c["a"] == 1 and c.pop("a") == 1 and c.pop("a", None) is None
    view = cache_view(reg, "inplace")
    assert view["memexport_cache_requests_total{hit}"] == 1  # pop's own lookup is no request
    assert view["memexport_cache_evictions_total{explicit}"] == 1
    assert memexport.uninstrument(c) is raw and type(raw) is cachetools.LRUCache
    raw["b"] = 2
    assert cache_view(reg, "inplace")["memexport_cache_puts_total"] == 1


class _OwnEq(cachetools.LRUCache):  # type: ignore[misc]
    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and dict(self) == dict(other)  # type: ignore[arg-type]

    __hash__ = None  # type: ignore[assignment]


def test_cachetools_class_that_could_notice_a_move_gets_a_proxy(reg: Registry) -> None:
    raw = _OwnEq(maxsize=2)
    c = memexport.cache(raw, name="noticing", registry=reg)
    assert c is not raw and type(raw) is _OwnEq and c == _OwnEq(maxsize=2)
    c["a"] = 1
    c["b"] = 2
    c["c"] = 3
    assert c["c"] == 3
    view = cache_view(reg, "noticing")
    assert view["memexport_cache_requests_total{hit}"] == 1
    assert view["memexport_cache_evictions_total{capacity}"] == 1
