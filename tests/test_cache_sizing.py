"""Cache bytes against objsize.get_deep_size on realistic values, and the sizer machinery."""

from __future__ import annotations

import functools
import random
import string
import sys
import time
from collections import OrderedDict
from typing import Any

import cachetools
import objsize
import pytest
from test_cache import cache_view

import memexport
from memexport.core.registry import Profile, Registry, SizeSpec
from memexport.core.sizing import deep_size, deep_size_many, entry_size, refresh
from memexport.kinds.cache import KIND

TOLERANCE = 0.10


def _text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_letters + "     ") for _ in range(n))


def chat_messages(n: int, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    return {f"conv-{i}": {"role": rng.choice(["user", "assistant"]),
                          "content": _text(rng, rng.randint(100, 1500)),
                          "timestamp": 1.7e9 + i, "tokens": rng.randint(10, 400)}
            for i in range(n)}


def strings(n: int, seed: int = 2) -> dict[str, Any]:
    rng = random.Random(seed)
    return {f"prompt-{i}": _text(rng, rng.randint(50, 2000)) for i in range(n)}


def float_lists(n: int, seed: int = 3) -> dict[str, Any]:
    rng = random.Random(seed)
    return {f"doc-{i}": [rng.random() for _ in range(384)] for i in range(n)}


DATASETS = {"chat messages": chat_messages, "strings": strings, "float lists": float_lists}


def reference(contents: dict[str, Any]) -> int:
    """objsize's deep size of the cache's contents: its keys and values."""
    return objsize.get_deep_size(*contents.keys(), *contents.values())


def reference_cache(cache: Any, keys: Any) -> int:
    """objsize's deep size of a whole cache object (its tables, links, entries), plus its
    keys: CPython's dict traversal does not report str keys, so objsize alone misses them."""
    return objsize.get_deep_size(cache, *keys)


def sampled_bytes(reg: Registry, name: str, ticks: int = 8) -> float:
    for _ in range(ticks):
        reg.run_tick_jobs(budget_seconds=10.0)  # bounded by entries, not time, here
    return cache_view(reg, name)["memexport_cache_bytes"]


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("n", [200, 2000])  # walked whole / sampled through windows
def test_default_sizer_within_10_percent_of_objsize_dict(dataset: str, n: int) -> None:
    reg = Registry()
    contents = DATASETS[dataset](n if dataset != "float lists" else n // 2)
    c = memexport.cache({}, name="d", registry=reg)
    c.update(contents)
    got = sampled_bytes(reg, "d")
    ref = reference(contents)
    assert abs(got - ref) <= TOLERANCE * ref, (got, ref, got / ref)


@pytest.mark.parametrize("dataset", DATASETS)
def test_default_sizer_within_10_percent_cachetools_and_guide(dataset: str) -> None:
    """The whole cache object is the reference here: a TTL cache's links cost ~15 % on top of
    chat messages, and memexport_cache_bytes counts them (it is the cache's memory)."""
    reg = Registry()
    contents = DATASETS[dataset](1000)
    from test_cache import MemoryBoundedLRUCache

    raw = {"lru": cachetools.LRUCache(maxsize=5000),
           "ttl": cachetools.TTLCache(maxsize=5000, ttl=3600),
           "guide": MemoryBoundedLRUCache(max_items=5000)}
    lru, ttl, guide = (memexport.cache(c, name=n, registry=reg) for n, c in raw.items())
    for k, v in contents.items():
        lru[k] = v
        ttl[k] = v
        guide.put(k, v)
    for name, c in raw.items():
        got = sampled_bytes(reg, name)
        ref = reference_cache(c, contents.keys())
        assert abs(got - ref) <= TOLERANCE * ref, (name, got, ref, got / ref)
        assert abs(got - reference(contents)) <= 0.2 * reference(contents)


def test_lru_cache_bytes_within_10_percent() -> None:
    reg = Registry()
    rng = random.Random(5)

    @functools.lru_cache(maxsize=1000)
    def answer(prompt: str) -> dict[str, Any]:
        return {"role": "assistant", "content": _text(rng, 800), "tokens": 200}

    memexport.cache(answer, name="fn", registry=reg)
    prompts = [f"question number {i}" for i in range(600)]
    results = {p: answer(p) for p in prompts}
    got = sampled_bytes(reg, "fn")
    ref = reference(results)
    assert abs(got - ref) <= TOLERANCE * ref, (got, ref, got / ref)


@pytest.mark.parametrize("dataset", DATASETS)
def test_entry_size_sum_within_10_percent(dataset: str) -> None:
    contents = DATASETS[dataset](1000)
    total = sum(entry_size(k, v) for k, v in contents.items())
    ref = reference(contents)
    assert abs(total - ref) <= TOLERANCE * ref, (total, ref, total / ref)


def test_entry_sizer_bytes_within_10_percent() -> None:
    reg = Registry()
    contents = chat_messages(1000)
    c = memexport.cache({}, name="e", registry=reg, sizer="entry")
    for k, v in contents.items():
        c[k] = v
    got = cache_view(reg, "e")["memexport_cache_bytes"]
    ref = reference(contents)
    assert abs(got - ref) <= TOLERANCE * ref, (got, ref)


def test_guide_getsizeof_undercounts_what_we_measure() -> None:
    """The guide's byte figure (sys.getsizeof per value) misses what messages hold."""
    from test_cache import MemoryBoundedLRUCache

    contents = chat_messages(300)
    guide = MemoryBoundedLRUCache(max_items=1000)
    for k, v in contents.items():
        guide.put(k, v)
    assert guide.memory_usage < 0.3 * reference(contents)


# -- deep_size ---------------------------------------------------------------------------


def test_deep_size_counts_shared_objects_once_and_skips_shared_kinds() -> None:
    shared = "x" * 1000
    obj = {"a": [shared, shared], "b": (shared,), "f": len, "t": int, "m": sys}
    size = deep_size(obj)
    assert size == objsize.get_deep_size(obj) + sum(sys.getsizeof(k) for k in obj)
    assert deep_size_many([shared, shared]) == sys.getsizeof(shared)


def test_deep_size_limit_objects_gives_a_lower_bound() -> None:
    big = [[i] for i in range(1000)]
    assert deep_size(big, limit_objects=10) < deep_size(big)


def test_deep_size_never_materialises_instance_dicts() -> None:
    class Plain:
        def __init__(self) -> None:
            self.payload = "y" * 500

    obj = Plain()
    assert deep_size(obj) >= 500
    if sys.version_info >= (3, 11):
        import gc

        # With inline values, the GC reports the attribute values, not a dict object.
        assert not any(type(r) is dict for r in gc.get_referents(obj))


# -- sampled sizes and the sizer job --------------------------------------------------------


class Table(OrderedDict):
    """A weak-referenceable mapping standing in for a cache."""


def _sampled(reg: Registry, obj: Any, entries: Any = lambda o: o.items(),
             overhead: Any = lambda o: 0) -> Any:
    profile = Profile(KIND, {}, size=SizeSpec(entries, len, overhead, True))
    return reg.register(obj, KIND, "sampled", profile)


def test_sampled_size_walks_at_least_one_entry_past_its_deadline() -> None:
    reg = Registry()
    d = Table((i, "z" * 100) for i in range(1000))
    comp = _sampled(reg, d)
    value = refresh(comp, d, deadline=time.perf_counter() - 1.0)
    assert value is not None and comp.size_mean > 0
    assert comp.size_cursor == 1  # one entry, then the deadline stopped it


def test_sampled_size_small_collection_is_exact() -> None:
    reg = Registry()
    d = Table((i, "z" * 100) for i in range(10))
    comp = _sampled(reg, d)
    assert refresh(comp, d) == deep_size_many([*d.keys(), *d.values()])


def test_sizer_job_drops_dead_collections_and_counts_failures() -> None:
    reg = Registry()
    ok = Table(a=1)
    bad = Table(a=1)
    _sampled(reg, ok)
    _sampled(reg, bad, entries=lambda o: 1 / 0)
    reg.run_tick_jobs()
    assert reg.errors.counts()["cache"] == 1
    assert reg.sizer.coverage() == 0.5
    del ok, bad
    reg.run_tick_jobs()
    assert reg.sizer.coverage() is None  # nothing left to size, nothing kept


def test_evicted_bytes_estimated_at_refresh() -> None:
    reg = Registry()
    c = memexport.cache(cachetools.LRUCache(maxsize=10), name="est", registry=reg)
    for i in range(10):
        c[i] = "v" * 1000 + str(i)
    reg.run_tick_jobs()  # the mean entry size is known from here
    for i in range(10, 15):
        c[i] = "v" * 1000 + str(i)  # 5 capacity evictions
    reg.run_tick_jobs()
    view = cache_view(reg, "est")
    assert view["memexport_cache_evictions_total{capacity}"] == 5
    per_entry = sys.getsizeof("v" * 1001) + sys.getsizeof(10)
    assert abs(view["memexport_cache_evicted_bytes_total"] - 5 * per_entry) <= 5 * 40


def test_a_collection_written_while_it_is_walked_is_still_sized() -> None:
    """Another thread writing to a cache while the sizer walks it ("dictionary changed size
    during iteration") used to leave the old size for good under a steady write rate (the
    demo's leaking memo read 15 MB at 400 MB). The walk is retried from a copy."""
    reg = Registry()
    memo = memexport.cache({}, name="memo", registry=reg)

    class Writer:
        """A value whose size is read while the walk is on: it writes to the memo then."""

        def __sizeof__(self) -> int:
            memo[object()] = "x" * 1000  # what another thread would do at that moment
            return 64

    for i in range(10):
        memo[i] = ("v" * 100, Writer())
    from memexport.kinds.cache import SPEC

    comp = SPEC.claimed(memo)
    assert comp is not None
    first = refresh(comp, memo)
    assert first is not None and first > 10 * 100
    memo.update({f"k{i}": "y" * 10_000 for i in range(20)})
    assert refresh(comp, memo) > first + 20 * 10_000


def test_the_sizer_sizes_what_grows_first() -> None:
    """A tick with time for one component sizes the one whose length moved most since it
    was last sized, not the next in the round: a leak among many quiet caches keeps its
    bytes current."""
    from memexport.core.sizing import SizerJob

    reg = Registry()
    quiet = [memexport.cache({i: "q" * 50 for i in range(5)}, name=f"quiet{i}", registry=reg)
             for i in range(30)]
    leak = memexport.cache({}, name="leak", registry=reg)
    job = SizerJob(reg)
    for _ in range(40):  # every component sized once
        job(time.perf_counter() + 10.0)
    from memexport.kinds.cache import SPEC

    comp = SPEC.claimed(leak)
    assert comp is not None and comp.size_len == 0
    for round_ in range(1, 4):
        leak.update({f"r{round_}-{i}": "x" * 1000 for i in range(10)})
        job(0.0)  # no time at all: one component only
        assert comp.size_len == len(leak), round_
    assert all(SPEC.claimed(q) is not None for q in quiet)
