"""The contract every kind and shape keeps, in the spirit of cachetools' ``CacheTestMixin``:
one suite over every shape of every kind.

For each case: the app's calls behave as on the bare object (same results, same
exceptions); the object is held weakly; counters survive the object; a bad name is refused
and names past the cap fold into ``__overflow__``; instrumenting again is one rule (same
name: the same object back; another name: ``ValueError``); ``uninstrument`` gives the
original back and stops counting; pickle and copy give what the docs promise.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import functools
import gc
import pickle
import queue
import weakref
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import cachetools
import pytest
from helpers import guide, samples

import memexport
from memexport.core.registry import OVERFLOW_NAME, Registry


class Store(MutableMapping[Any, Any]):
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

    def __reduce__(self) -> Any:
        return (Store, ())


def _square(x: int) -> int:
    return x * x


def _mapping_ops(c: Any) -> list[Any]:
    out: list[Any] = []
    c["a"] = 1
    c["b"] = 2
    out.append(c["a"])
    out.append(c.get("zz"))
    try:
        c["missing"]
    except KeyError as exc:
        out.append(("KeyError", exc.args))
    out.append(sorted(c))
    return out


def _getput_ops(c: Any) -> list[Any]:
    for i in range(5):
        c.put(i, str(i))
    return [c.get(4), c.get(99)]


def _pool_ops(p: Any) -> list[Any]:
    with p.acquire(timeout=0.01) as r:
        first = r is not None
    return [first]


def _queue_ops(q: Any) -> list[Any]:
    q.put("r1")
    r = q.get()
    q.put(r)
    try:
        q.get_nowait()
        q.get_nowait()
    except queue.Empty:
        return [r, "empty"]
    return [r]


def _executor_ops(ex: Any) -> list[Any]:
    return [ex.submit(pow, 2, 5).result(timeout=10), list(ex.map(abs, [-1, 2]))]


def _history_ops(h: Any) -> list[Any]:
    for i in range(12):
        h.add_message({"role": "user", "content": f"m{i}", "timestamp": float(i)})
    return [len(h.conversation_history), len(h.summaries)]


def _deque_ops(d: Any) -> list[Any]:
    for i in range(6):
        d.append(i)
    d.extend([7, 8])
    return list(d)


def _agent_ops(a: Any) -> list[Any]:
    for i in range(3):
        a.store_memory(f"k{i}", "v" * 10)
    return [len(a._memory_store)]


@dataclass
class Case:
    """One shape of one kind: how to make the bare object, what the app does with it, a
    counter its events move, and what pickling promises."""

    id: str
    kind: Callable[..., Any]
    make: Callable[[], Any]
    ops: Callable[[Any], list[Any]]
    counter: str  # a sample the ops move (name or name{label values})
    same_object: bool  # the instrumented object is the bare one (no proxy, no copy)
    pickles_as: Callable[[Any], type] | None = None  # type of the unpickled object


CASES = [
    Case("cache-dict", memexport.cache, dict, _mapping_ops,
         "memexport_cache_requests_total{hit}", False, lambda raw: dict),
    Case("cache-ordereddict", memexport.cache, OrderedDict, _mapping_ops,
         "memexport_cache_puts_total", False, lambda raw: OrderedDict),
    Case("cache-defaultdict", memexport.cache, lambda: defaultdict(int),
         lambda c: [c["x"], c["x"]], "memexport_cache_requests_total{miss}", False,
         lambda raw: defaultdict),
    Case("cache-mapping", memexport.cache, Store, _mapping_ops,
         "memexport_cache_requests_total{hit}", False, lambda raw: Store),
    Case("cache-cachetools", memexport.cache, lambda: cachetools.LRUCache(maxsize=10),
         _mapping_ops, "memexport_cache_requests_total{hit}", False,
         lambda raw: cachetools.LRUCache),
    Case("cache-ttl", memexport.cache, lambda: cachetools.TTLCache(maxsize=10, ttl=60),
         _mapping_ops, "memexport_cache_puts_total", False, lambda raw: cachetools.TTLCache),
    Case("cache-lru_cache", memexport.cache, lambda: functools.lru_cache(maxsize=8)(_square),
         lambda f: [f(2), f(2), f(3)], "memexport_cache_requests_total{hit}", True, None),
    Case("cache-getput", memexport.cache, lambda: guide.MemoryBoundedLRUCache(max_items=3),
         _getput_ops, "memexport_cache_evictions_total{capacity}", False,
         lambda raw: type(raw)),
    Case("pool-guide", memexport.pool, lambda: guide.ResourcePool(object, max_size=2),
         _pool_ops, "memexport_pool_acquires_total", False, None),
    Case("pool-queue", memexport.pool, queue.Queue, _queue_ops,
         "memexport_pool_acquires_total", False, None),
    Case("pool-executor", memexport.pool, lambda: concurrent.futures.ThreadPoolExecutor(1),
         _executor_ops, "memexport_pool_acquires_total", False, None),
    Case("conversation-manager", memexport.conversation,
         lambda: guide.MemoryEfficientConversationManager(10, 4), _history_ops,
         "memexport_conversation_messages_added_total", True,
         lambda raw: guide.MemoryEfficientConversationManager),
    Case("conversation-deque", memexport.conversation, lambda: deque(maxlen=4), _deque_ops,
         "memexport_conversation_messages_dropped_total", False, lambda raw: deque),
    Case("conversation-list", memexport.conversation, list, _deque_ops,
         "memexport_conversation_messages_added_total", False, lambda raw: list),
    Case("agent-guide", memexport.agent, lambda: guide.MemoryManagedAgent("a"), _agent_ops,
         "memexport_agent_memory_items", True),  # the guide's agent holds a weak dict: no pickle
]
IDS = [c.id for c in CASES]

LABEL = {memexport.cache: "cache", memexport.pool: "pool",
         memexport.conversation: "conversation", memexport.agent: "agent"}


def value(reg: Registry, case: Case, name: str) -> float | None:
    metric, _, rest = case.counter.partition("{")
    extra = rest.rstrip("}")
    label = LABEL[case.kind]
    for (m, labels), v in samples(reg).items():
        d = dict(labels)
        if m != metric or d.pop(label, None) != name:
            continue
        if extra and list(d.values()) != [extra]:
            continue
        return v
    return None


def _close(obj: Any) -> None:
    target = getattr(obj, "__wrapped__", obj)
    if isinstance(target, concurrent.futures.ThreadPoolExecutor):
        target.shutdown(wait=True)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_calls_behave_as_on_the_bare_object(case: Case) -> None:
    reg = Registry()
    bare, raw = case.make(), case.make()
    target = case.kind(raw, "behave", registry=reg)
    assert case.ops(target) == case.ops(bare)
    assert value(reg, case, "behave")
    _close(target)
    _close(bare)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_held_weakly_and_counts_survive(case: Case) -> None:
    reg = Registry()
    raw = case.make()
    target = case.kind(raw, "weak", registry=reg)
    case.ops(target)
    before = value(reg, case, "weak")
    _close(target)
    refs = [weakref.ref(o) for o in {id(target): target, id(raw): raw}.values()
            if type(o).__weakrefoffset__]
    del target, raw
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)
    after = value(reg, case, "weak")
    if case.counter.endswith(("_total", "}")) and "_total" in case.counter:
        assert after == before  # counters never go backwards: the totals stay
    else:
        assert after is None  # gauges leave with the object


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_names_are_validated_and_capped(case: Case) -> None:
    reg = Registry(max_names_per_kind=1)
    with pytest.raises(ValueError, match="name"):
        case.kind(case.make(), "bad name", registry=reg)
    first = case.kind(case.make(), "one", registry=reg)
    folded = case.kind(case.make(), "two", registry=reg)
    case.ops(folded)
    s = samples(reg)
    kind = LABEL[case.kind]
    assert s[("memexport_series_overflow_total", (("kind", kind),))] == 1
    assert value(reg, case, OVERFLOW_NAME)
    _close(first)
    _close(folded)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_one_double_instrumentation_rule(case: Case) -> None:
    reg = Registry()
    raw = case.make()
    target = case.kind(raw, "once", registry=reg)
    assert case.kind(target, "once", registry=reg) is target
    if case.same_object:
        assert target is raw
    else:
        assert case.kind(raw, "once", registry=reg) is target or raw is not target
    with pytest.raises(ValueError, match="already instrumented"):
        case.kind(target, "other", registry=reg)
    _close(target)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_uninstrument_restores_the_original(case: Case) -> None:
    reg = Registry()
    raw = case.make()
    target = case.kind(raw, "undo", registry=reg)
    case.ops(target)
    counted = value(reg, case, "undo")
    original = memexport.uninstrument(target)
    if case.same_object or not isinstance(raw, dict | list | deque):
        assert original is raw
    case.ops(original)
    case.ops(target) if target is not original and not case.same_object else None
    if "_total" in case.counter:
        assert value(reg, case, "undo") == counted  # nothing counted any more
    with pytest.raises(ValueError, match="not instrumented"):
        memexport.uninstrument(original)
    _close(target)


@pytest.mark.parametrize("case", [c for c in CASES if c.pickles_as], ids=[
    c.id for c in CASES if c.pickles_as])
def test_pickle_and_copy_give_the_plain_object(case: Case) -> None:
    reg = Registry()
    raw = case.make()
    target = case.kind(raw, "copies", registry=reg)
    case.ops(target)
    assert case.pickles_as is not None
    want = case.pickles_as(raw)
    for clone in (pickle.loads(pickle.dumps(target)), copy.copy(target), copy.deepcopy(target)):
        assert type(clone) is want


def test_every_kind_has_a_case() -> None:
    assert set(LABEL.values()) <= {LABEL[c.kind] for c in CASES}


def test_asyncio_queue_behaves_as_the_bare_queue() -> None:
    async def run(q: Any) -> list[Any]:
        await q.put("r")
        r = await q.get()
        await q.put(r)
        return [r, q.qsize()]

    reg = Registry()
    target = memexport.pool(asyncio.Queue(), "aq", registry=reg)
    assert asyncio.run(run(target)) == asyncio.run(run(asyncio.Queue()))
