"""Every shape against failing user code: raising and wrong-typed ``len``, sizers, readers and
``cache_info``. The app's own operations behave as on the bare object, a scrape and a
collector tick never raise, the failed series is absent (never a made-up value) and the
failure is counted in ``memexport_collector_errors_total``.

Issue 11 items 7 (a sizer returning None or a str made ``d[k] = v`` raise), 10 (behaviour
that differed from the bare object), 13 (``inf`` accepted as a number; a failing sizer left
``memexport_cache_bytes`` at 0; ``SystemExit`` raised by sampled code).
"""

from __future__ import annotations

import collections
import functools
import math
import queue
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import cachetools
import pytest

import memexport
from tests.adversarial.support import (
    CANARY,
    GetPutCache,
    GuidePool,
    Registry,
    UserMapping,
    counter_total,
    samples,
    value,
)

BYTES = "memexport_cache_bytes"
ITEMS = "memexport_cache_items"


def boom(*_args: Any) -> Any:
    raise ValueError(f"cannot size {CANARY!r}")


#: What a user's sizer or reader may return instead of a number (or do instead of returning).
BAD_RESULTS: dict[str, Callable[..., Any]] = {
    "raises": boom,
    "None": lambda *a: None,
    "str": lambda *a: "12",
    "list": lambda *a: [1],
    "object": lambda *a: object(),
    "inf": lambda *a: math.inf,
    "nan": lambda *a: math.nan,
    "negative": lambda *a: -5,
}


def scrape_ok(reg: Registry) -> dict[Any, float]:
    """A collection and a collector tick, neither of which may raise."""
    reg.run_tick_jobs(0.05)
    return samples(reg)


# -- item 7 and 13: sizers ---------------------------------------------------------------------


@pytest.mark.parametrize("result", list(BAD_RESULTS))
@pytest.mark.parametrize("shape", ["dict", "mapping"])
def test_a_failing_sizer_never_reaches_the_put_and_leaves_bytes_absent(
        shape: str, result: str) -> None:
    reg = Registry()
    bare: Any = {} if shape == "dict" else UserMapping()
    c = memexport.cache(bare, name="sized", sizer=BAD_RESULTS[result], registry=reg)
    c["k"] = {"v": CANARY}  # must not raise, whatever the sizer does
    c["k2"] = 2
    assert c["k"] == {"v": CANARY} and len(c) == 2
    scrape_ok(reg)
    assert value(reg, BYTES, cache="sized") is None  # None is "no size": a failure too
    assert counter_total(reg, "cache") >= 1
    assert value(reg, ITEMS, cache="sized") == 2
    c.clear()  # empty again: the bytes are known (0) again
    assert value(reg, BYTES, cache="sized") == 0


def test_a_sizer_failing_on_entries_present_at_wrap_time_leaves_bytes_absent() -> None:
    reg = Registry()
    c = memexport.cache({"a": 1, "b": CANARY}, name="prefilled", sizer=boom, registry=reg)
    assert value(reg, BYTES, cache="prefilled") is None
    assert c["b"] == CANARY


def test_sampled_sizes_of_a_mapping_whose_len_raises_are_absent() -> None:
    class BadLen(UserMapping):
        def __len__(self) -> int:
            raise RuntimeError(CANARY)

    reg = Registry()
    c = memexport.cache(BadLen({"a": 1}), name="badlen", registry=reg)
    c["b"] = 2
    assert c["b"] == 2
    got = scrape_ok(reg)
    assert value(reg, ITEMS, cache="badlen") is None
    assert value(reg, BYTES, cache="badlen") is None
    assert ("memexport_cache_puts_total", (("cache", "badlen"),)) in got
    assert counter_total(reg, "cache") >= 1


# -- item 13: SystemExit in sampled code -----------------------------------------------------------


class ExitOnSize:
    def __sizeof__(self) -> int:
        raise SystemExit(3)


class ExitOnLen(UserMapping):
    def __len__(self) -> int:
        raise SystemExit(4)


def test_system_exit_raised_by_sampled_code_never_leaves_a_tick() -> None:
    reg = Registry()
    a = memexport.cache({"k": ExitOnSize()}, name="exit_sizeof", registry=reg)
    b = memexport.cache(ExitOnLen({"k": 1}), name="exit_len", registry=reg)
    for _ in range(3):
        reg.run_tick_jobs(0.05)  # must not raise SystemExit
    assert counter_total(reg, "cache") + counter_total(reg, "sizer") >= 1
    assert a["k"] is not None and b["k"] == 1


# -- every shape x failing readers -----------------------------------------------------------------


READER_ARGS: dict[str, tuple[tuple[str, ...], Callable[[], Any]]] = {
    "cache": (("items", "bytes", "max_items", "max_bytes"), lambda: {"a": 1}),
    "cache-mapping": (("items", "bytes", "max_items", "max_bytes"), lambda: UserMapping()),
    "cache-cachetools": (("items", "bytes", "max_items", "max_bytes"),
                         lambda: cachetools.LRUCache(8)),
    "cache-getput": (("items", "bytes", "max_items", "max_bytes"), GetPutCache),
    "pool-queue": (("idle", "in_use", "max_size", "size"), lambda: queue.Queue(4)),
    "pool-context": (("idle", "in_use", "max_size", "size"), GuidePool),
}
METRIC_OF = {"items": ITEMS, "bytes": BYTES, "max_items": "memexport_cache_max_items",
             "max_bytes": "memexport_cache_max_bytes", "idle": "memexport_pool_resources",
             "in_use": "memexport_pool_resources", "max_size": "memexport_pool_max_resources",
             "size": "memexport_pool_created_total"}


def _use(kind: str, obj: Any) -> None:
    """The app's own operations on the instrumented object (must behave as on the bare one)."""
    if kind.startswith("cache-getput"):
        obj.put("k", 1)
        assert obj.get("k") == 1
    elif kind.startswith("cache"):
        obj["k"] = 1
        assert obj["k"] == 1
    elif kind == "pool-queue":
        obj.put("r")
        assert obj.get() == "r"
        obj.put("r")
    else:
        with obj.acquire() as r:
            assert r is not None


CASES = [(kind, arg, result) for kind, (args, _) in READER_ARGS.items() for arg in args
         for result in BAD_RESULTS]


@pytest.mark.parametrize(("kind", "arg", "result"), CASES)
def test_a_failing_reader_is_counted_and_its_series_absent(kind: str, arg: str,
                                                           result: str) -> None:
    reg = Registry()
    make = READER_ARGS[kind][1]
    instrument: Any = memexport.cache if kind.startswith("cache") else memexport.pool
    if (kind, arg) == ("pool-queue", "size"):  # not read for a queue: refused at the call
        with pytest.raises(ValueError, match="size="):
            instrument(make(), name="failing", registry=reg, size=BAD_RESULTS[result])
        return
    try:
        obj = instrument(make(), name="failing", registry=reg, **{arg: BAD_RESULTS[result]})
    except TypeError as exc:  # a get/put cache counts its entries at the call
        assert (kind, arg, result) == ("cache-getput", "items", "raises")
        assert CANARY not in str(exc)
        return
    _use(kind, obj)
    got = scrape_ok(reg)
    label = "cache" if kind.startswith("cache") else "pool"
    metric = METRIC_OF[arg]
    series = [v for (m, ls), v in got.items() if m == metric and (label, "failing") in ls]
    if arg == "idle":
        series = [v for (m, ls), v in got.items()
                  if m == metric and ("state", "idle") in ls and (label, "failing") in ls]
    elif arg == "in_use":
        series = [v for (m, ls), v in got.items()
                  if m == metric and ("state", "in_use") in ls and (label, "failing") in ls]
    if metric.endswith("_total"):  # a pulled counter: it keeps its last total, never NaN/inf
        assert all(math.isfinite(v) and v >= 0 for v in series)
    else:
        assert series == [], (metric, series)
    if result not in ("None", "nan"):  # "unknown" is absent; anything else is a failure
        assert counter_total(reg, label) >= 1
    _use(kind, obj)  # still behaves after the scrape


class FakeLru:
    """Looks like an lru_cache wrapper (``cache_info``/``cache_clear``/``__wrapped__``)."""

    def __init__(self) -> None:
        self.__wrapped__ = lambda x: x
        self.broken: Any = False

    def __call__(self, x: Any) -> Any:
        return x

    def cache_clear(self) -> None:
        pass

    def cache_info(self) -> Any:
        if self.broken == "raise":
            raise RuntimeError(CANARY)
        if self.broken == "type":
            return {"hits": CANARY}
        return functools._CacheInfo(1, 2, 8, 2)


@pytest.mark.parametrize("broken", ["raise", "type"])
def test_a_cache_info_that_fails_at_scrape_is_counted_and_absent(broken: str) -> None:
    reg = Registry()
    f = memexport.cache(FakeLru(), name="fake_lru", registry=reg)
    assert value(reg, ITEMS, cache="fake_lru") == 2
    f.broken = broken
    scrape_ok(reg)
    assert value(reg, ITEMS, cache="fake_lru") is None
    assert value(reg, "memexport_cache_requests_total", cache="fake_lru", result="miss") == 2
    assert counter_total(reg, "cache") >= 1


def test_a_cache_info_that_fails_at_setup_is_a_clear_type_error() -> None:
    fake = FakeLru()
    fake.broken = "raise"
    with pytest.raises(TypeError) as err:
        memexport.cache(fake, name="fake_setup", registry=Registry())
    assert CANARY not in str(err.value) and "RuntimeError" in str(err.value)


class Switch:
    """A reader that works at setup and fails (as ``result``) once switched."""

    def __init__(self, good: Callable[[Any], Any], result: str) -> None:
        self.good, self.bad, self.on = good, BAD_RESULTS[result], False

    def __call__(self, obj: Any) -> Any:
        return self.bad(obj) if self.on else self.good(obj)


@pytest.mark.parametrize("result", ["raises", "str", "object", "None"])
def test_failing_history_and_memory_readers_of_conversations_and_agents(result: str) -> None:
    reg = Registry()

    class Manager:
        def __init__(self) -> None:
            self.msgs: list[Any] = []

        def add_message(self, m: Any) -> None:
            self.msgs.append(m)

    class Bot:
        def __init__(self) -> None:
            self.notes: dict[str, Any] = {}

    history = Switch(lambda o: o.msgs, result)
    memory = Switch(lambda o: o.notes, result)
    m = memexport.conversation(Manager(), name="failing", history=history, registry=reg)
    a = memexport.agent(Bot(), name="failing", memory=memory, registry=reg)
    m.add_message({"content": CANARY})
    a.notes["k"] = CANARY
    assert value(reg, "memexport_conversation_messages", conversation="failing") == 1
    history.on = memory.on = True
    m.add_message({"content": CANARY})
    assert m.msgs[-1] == {"content": CANARY}
    scrape_ok(reg)
    assert value(reg, "memexport_conversation_messages", conversation="failing") is None
    assert value(reg, "memexport_agent_memory_items", agent="failing") is None
    assert value(reg, "memexport_conversations", conversation="failing") == 1
    assert value(reg, "memexport_agents", agent="failing") == 1
    if result != "None":
        assert counter_total(reg, "conversation") >= 1 and counter_total(reg, "agent") >= 1


@pytest.mark.parametrize("kind", ["agent"])  # a conversation reads its history at scrape only
def test_a_reader_failing_at_setup_is_a_clear_error_without_its_message(kind: str) -> None:
    class Holder:
        def __init__(self) -> None:
            self.msgs: list[Any] = []

        def add_message(self, m: Any) -> None:
            self.msgs.append(m)

    arg = {"conversation": "history", "agent": "memory"}[kind]
    with pytest.raises(TypeError) as err:
        getattr(memexport, kind)(Holder(), name="setup", registry=Registry(), **{arg: boom})
    assert CANARY not in str(err.value) and "ValueError" in str(err.value)


# -- item 13: inf and other non-numbers as arguments ---------------------------------------


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, -1])
@pytest.mark.parametrize(("kind", "arg"), [
    ("cache", "items"), ("cache", "bytes"), ("cache", "max_items"), ("cache", "max_bytes"),
    ("pool", "max_size"), ("pool", "idle"), ("pool", "in_use"), ("pool", "size")])
def test_non_finite_or_negative_numbers_are_refused_at_the_call(kind: str, arg: str,
                                                                bad: float) -> None:
    obj: Any = {} if kind == "cache" else queue.Queue()
    with pytest.raises(ValueError) as err:
        getattr(memexport, kind)(obj, name="inf", registry=Registry(), **{arg: bad})
    assert arg in str(err.value)


# -- item 10: behave as the bare object ----------------------------------------------------


class LenRaises(UserMapping):
    def __len__(self) -> int:
        raise RuntimeError(CANARY)


def test_clear_of_a_mapping_whose_len_raises_clears_as_the_bare_one() -> None:
    bare, twin = LenRaises({"a": 1}), LenRaises({"a": 1})
    bare.clear()
    c = memexport.cache(twin, name="clear_len", registry=Registry())
    c.clear()
    assert c.data == bare.data == {}


class OwnSetitem(dict[Any, Any]):
    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)

    def __len__(self) -> int:
        raise RuntimeError(CANARY)

    def __contains__(self, key: object) -> bool:
        raise RuntimeError(CANARY)


def test_put_into_a_dict_subclass_whose_len_and_contains_raise() -> None:
    bare = OwnSetitem()
    bare["k"] = 1
    reg = Registry()
    c = memexport.cache(OwnSetitem(), name="own_setitem", registry=reg)
    c["k"] = 1
    assert dict.items(c.__wrapped__) == dict.items(bare)  # type: ignore[attr-defined]
    assert value(reg, "memexport_cache_puts_total", cache="own_setitem") == 1


class MissingContainsRaises(dict[Any, Any]):
    def __missing__(self, key: Any) -> Any:
        return 0

    def __contains__(self, key: object) -> bool:
        raise RuntimeError(CANARY)


def test_lookup_in_a_mapping_with_missing_whose_contains_raises() -> None:
    c = memexport.cache(MissingContainsRaises(a=1), name="missing_contains",
                        registry=Registry())
    assert c["a"] == 1 and c["zz"] == 0


def test_len_of_a_ttl_cache_with_getsizeof_calls_getsizeof_as_cachetools_does() -> None:
    now = [0.0]
    calls: list[Any] = []

    def getsizeof(v: Any) -> int:
        calls.append(v)
        return 1

    def make() -> cachetools.TTLCache[Any, Any]:
        c: cachetools.TTLCache[Any, Any] = cachetools.TTLCache(
            10, ttl=1, timer=lambda: now[0], getsizeof=getsizeof)
        c["a"], c["b"] = 1, 2
        return c

    bare = make()
    reg = Registry()
    proxy = memexport.cache(make(), name="ttl_len", registry=reg)
    now[0] = 5.0
    calls.clear()
    bare_len = len(bare)
    bare_calls = len(calls)
    calls.clear()
    assert len(proxy) == bare_len == 0
    assert len(calls) == bare_calls == 0
    assert value(reg, "memexport_cache_evictions_total", cache="ttl_len", reason="expired") == 2
    assert value(reg, "memexport_cache_evicted_bytes_total", cache="ttl_len") == 2


class Unreadable:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(CANARY)


@pytest.mark.parametrize("kind", ["cache", "pool", "conversation"])
def test_an_object_whose_getattr_raises_is_a_clear_type_error(kind: str) -> None:
    with pytest.raises(TypeError) as err:
        getattr(memexport, kind)(Unreadable(), name="unreadable", registry=Registry())
    assert "Unreadable" in str(err.value) and CANARY not in str(err.value)


# -- the app's exceptions and results are its own -----------------------------------------------


def test_the_objects_own_exceptions_come_through_unchanged() -> None:
    reg = Registry()
    err = KeyError(CANARY)

    class Raising(UserMapping):
        def __getitem__(self, key: Any) -> Any:
            raise err

    c = memexport.cache(Raising(), name="raising", registry=reg)
    with pytest.raises(KeyError) as got:
        c["x"]
    assert got.value is err
    assert value(reg, "memexport_cache_requests_total", cache="raising", result="miss") == 1

    class BadPool:
        @staticmethod
        def factory() -> Any:
            raise ConnectionError(CANARY)

        def __init__(self) -> None:
            self.pool: queue.Queue[Any] = queue.Queue()

        def acquire(self) -> Iterator[Any]:
            raise NotImplementedError

    p = memexport.pool(GuidePool(factory=BadPool.factory), name="raising", registry=reg)
    with pytest.raises(ConnectionError), p.acquire():
        pass
    assert value(reg, "memexport_pool_acquire_errors_total", pool="raising") == 1


def test_deque_histories_count_as_the_deque_behaves() -> None:
    reg = Registry()
    h: Any = memexport.conversation(collections.deque(maxlen=2), name="bounded", registry=reg)
    with pytest.raises(TypeError):
        h.extend(5)  # not iterable: as deque.extend raises, nothing counted
    h.extend(["a", "b", "c"])
    assert list(h) == ["b", "c"]
    assert value(reg, "memexport_conversation_messages_added_total",
                 conversation="bounded") == 3


def test_a_mutable_mapping_subclass_count_of_explicit_removals() -> None:
    class M(MutableMapping[Any, Any]):
        def __init__(self) -> None:
            self.d: dict[Any, Any] = {}

        def __getitem__(self, k: Any) -> Any:
            return self.d[k]

        def __setitem__(self, k: Any, v: Any) -> None:
            self.d[k] = v

        def __delitem__(self, k: Any) -> None:
            del self.d[k]

        def __iter__(self) -> Iterator[Any]:
            return iter(self.d)

        def __len__(self) -> int:
            return len(self.d)

    reg = Registry()
    c = memexport.cache(M(), name="removals", registry=reg)
    c["a"], c["b"] = 1, 2
    del c["a"]
    assert c.pop("b") == 2
    assert value(reg, "memexport_cache_evictions_total", cache="removals",
                 reason="explicit") == 2
