"""The component registry: groups, weak references, counters that never go backwards."""

from __future__ import annotations

import gc
import logging
import random
import threading

import pytest
from helpers import THING, exposition, samples

import memexport
from memexport.core.counters import Adder, Counter, Histogram, NumberedCounter
from memexport.core.registry import OVERFLOW_NAME, Registry


class Box(list):
    """A weak-referenceable list, standing in for a user's cache."""


def track(reg: Registry, obj: Box, name: str):
    comp = reg.register(obj, THING, name)
    comp.gauge("memexport_thing_items", len)
    comp.gauge("memexport_thing_largest_items", len)
    comp.gauge("memexport_thing_bytes", lambda o: 8 * len(o))
    comp.pulled_counter("memexport_thing_pulled_total", lambda o: o.pulled)
    return comp


def test_group_sums_max_and_live_count():
    reg = Registry()
    a, b = Box([1, 2, 3]), Box([1])
    a.pulled = b.pulled = 0
    track(reg, a, "x")
    track(reg, b, "x")
    s = samples(reg)
    assert s[("memexport_thing_items", (("thing", "x"),))] == 4
    assert s[("memexport_thing_largest_items", (("thing", "x"),))] == 3
    assert s[("memexport_thing_bytes", (("thing", "x"),))] == 32
    assert s[("memexport_things", (("thing", "x"),))] == 2
    assert s[("memexport_things_created_total", (("thing", "x"),))] == 2


def test_counters_survive_the_object_and_gauges_leave():
    reg = Registry()
    keep, drop = Box([1]), Box([1, 2])
    keep.pulled, drop.pulled = 5, 7
    c1 = track(reg, keep, "x")
    c2 = track(reg, drop, "x")
    for _ in range(3):
        c1.counter("memexport_thing_requests_total", "hit").inc()
    for _ in range(4):
        c2.counter("memexport_thing_requests_total", "hit").inc()
    c2.counter("memexport_thing_requests_total", "miss").inc()
    c2.adder("memexport_thing_evicted_bytes_total").add(100)
    c2.histogram("memexport_thing_wait_seconds").observe(0.5)
    before = samples(reg)
    hit = ("memexport_thing_requests_total", (("result", "hit"), ("thing", "x")))
    assert before[hit] == 7
    assert before[("memexport_thing_pulled_total", (("thing", "x"),))] == 12
    del drop, c2
    gc.collect()
    after = samples(reg)
    assert after[hit] == 7
    assert after[("memexport_thing_requests_total", (("result", "miss"), ("thing", "x")))] == 1
    assert after[("memexport_thing_evicted_bytes_total", (("thing", "x"),))] == 100
    assert after[("memexport_thing_pulled_total", (("thing", "x"),))] == 12
    assert after[("memexport_thing_wait_seconds_count", (("thing", "x"),))] == 1
    assert after[("memexport_thing_items", (("thing", "x"),))] == 1
    assert after[("memexport_things", (("thing", "x"),))] == 1
    assert after[("memexport_things_finalized_total", (("thing", "x"),))] == 1
    del keep, c1
    gc.collect()
    gone = samples(reg)
    assert ("memexport_thing_items", (("thing", "x"),)) not in gone
    assert gone[("memexport_things", (("thing", "x"),))] == 0
    assert gone[hit] == 7


def test_registry_keeps_no_object_alive():
    reg = Registry()
    box = Box()
    box.pulled = 0
    track(reg, box, "x")
    import weakref

    ref = weakref.ref(box)
    del box
    gc.collect()
    assert ref() is None
    assert reg.live_components() == 0


def test_pulled_counter_reset_does_not_go_backwards():
    reg = Registry()
    box = Box()
    box.pulled = 10
    track(reg, box, "x")
    key = ("memexport_thing_pulled_total", (("thing", "x"),))
    assert samples(reg)[key] == 10
    box.pulled = 2  # the object's own counter was reset (cache_clear())
    assert samples(reg)[key] == 12


@pytest.mark.parametrize("bad", ["", "has space", "__x", "a" * 129, "ü", 3, None, "x\n"])
def test_invalid_names_raise_value_error_naming_them(bad):
    with pytest.raises(ValueError, match=repr(bad)[:20].replace("\\", "\\\\").replace("(", r"\(")
                       .replace("[", r"\[").replace("*", r"\*")):
        Registry().register(Box(), THING, bad)


def test_name_cap_folds_into_overflow_and_counts():
    reg = Registry(max_names_per_kind=2)
    boxes = [Box() for _ in range(5)]
    for i, b in enumerate(boxes):
        b.pulled = 0
        track(reg, b, f"n{i}")
    s = samples(reg)
    assert s[("memexport_things", (("thing", OVERFLOW_NAME),))] == 3
    assert s[("memexport_series_overflow_total", (("kind", "thing"),))] == 3
    names = {dict(k[1]).get("thing") for k in s if k[0] == "memexport_things"}
    assert names == {"n0", "n1", OVERFLOW_NAME}
    track(reg, boxes[0], "n0")  # an existing name still gets its own series
    assert samples(reg)[("memexport_things", (("thing", "n0"),))] == 2


def test_failing_reader_is_counted_logged_once_and_scrape_goes_on(caplog):
    reg = Registry()
    good, bad = Box([1]), Box([1])
    good.pulled = bad.pulled = 0
    track(reg, good, "good")
    comp = track(reg, bad, "bad")

    def broken(obj):
        raise RuntimeError("secret user data")

    comp.gauge("memexport_thing_items", broken)
    with caplog.at_level(logging.WARNING, logger="memexport"):
        s1 = samples(reg)
        s2 = samples(reg)
    assert s2[("memexport_thing_items", (("thing", "good"),))] == 1
    assert ("memexport_thing_items", (("thing", "bad"),)) not in s2
    assert s2[("memexport_thing_bytes", (("thing", "bad"),))] == 8
    assert s1[("memexport_collector_errors_total", (("collector", "thing"),))] == 1
    assert s2[("memexport_collector_errors_total", (("collector", "thing"),))] == 2
    assert len([r for r in caplog.records if "memexport_thing_items" in r.getMessage()]) == 1
    text = generate_latest_text(reg)
    assert "secret user data" not in text


def generate_latest_text(reg: Registry) -> str:
    return exposition(reg)


def test_unweakrefable_object_gets_a_type_error():
    with pytest.raises(TypeError, match="weak references"):
        Registry().register({}, THING, "x")


def test_counter_exact_under_eight_threads():
    c = Counter()
    inc = c.inc
    n = 1_000_000

    def work():
        for _ in range(n):
            inc()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.value() == 8 * n


def test_adder_and_histogram_exact_under_threads():
    a, h = Adder(), Histogram((1.0, 2.0))

    def work():
        for i in range(20_000):
            a.add(1)
            h.observe(float(i % 3))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a.value() == 160_000
    v = h.value()
    assert v.count == 160_000
    assert v.cumulative == (8 * 13334, 8 * 20_000, 8 * 20_000)  # 0 and 1 fall in le=1
    assert v.sum == 8 * (6667 * 1 + 6666 * 2)


def test_histogram_zeros_count_as_values_of_zero_under_threads():
    """``zero()`` (a wait that did not wait) is a value of 0 kept as a count alone."""
    h, plain = Histogram((1.0, 2.0)), Histogram((1.0, 2.0))
    zero = h.zero

    def work():
        for i in range(20_000):
            if i % 2:
                zero()
            else:
                h.add(1.5)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert h.count() == 80_000
    for i in range(80_000):
        plain.add(0.0 if i % 2 else 1.5)
    assert h.value() == plain.value()
    zero()
    assert h.count() == 80_001 and h.value().cumulative == (40_001, 80_001, 80_001)


def test_numbered_counter_returns_the_count_before_each_event():
    c = NumberedCounter()
    assert [c.inc() for _ in range(3)] == [0, 1, 2] and c.value() == 3
    assert Counter().inc() is None


def test_histogram_folds_match_counting_each_bucket():
    # Folds sort only the values above the first bound: mixes of none, some and all above,
    # on bounds, below the first, folded in several batches, give what counting gives.
    rng = random.Random(12)
    for _ in range(500):
        bounds = sorted({round(rng.uniform(-1, 10), 1) for _ in range(rng.randint(1, 6))})
        h = Histogram(bounds)
        seen = []
        for _ in range(rng.randint(1, 4)):
            batch = [rng.choice([rng.uniform(-2, 12), rng.choice(bounds), bounds[0] - 1])
                     for _ in range(rng.randint(0, 30))]
            for x in batch:
                h.add(x)
            seen += batch
            h.fold()
        v = h.value()
        assert v.cumulative == (*(sum(x <= b for x in seen) for b in bounds), len(seen))
        assert v.sum == pytest.approx(sum(seen))


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "1GB", True])
def test_budget_rejects_bad_limits(bad):
    with pytest.raises(ValueError, match="limit_bytes"):
        memexport.budget(bad)


def test_budget_exported_next_to_usage():
    reg = Registry()
    box = Box([1, 2])
    box.pulled = 0
    track(reg, box, "x")
    memexport.budget(1024, kind="thing", name="x", registry=reg)
    memexport.budget(2**30, registry=reg)
    s = samples(reg)
    assert s[("memexport_thing_budget_bytes", (("thing", "x"),))] == 1024
    assert s[("memexport_process_memory_budget_bytes", ())] == 2**30
    with pytest.raises(ValueError, match="'nokind'"):
        memexport.budget(1, kind="nokind", name="x", registry=reg)
    with pytest.raises(ValueError, match="needs a kind"):
        memexport.budget(1, name="x", registry=reg)


def test_max_names_validation():
    with pytest.raises(ValueError, match="0"):
        memexport.configure(max_names_per_kind=0)


def test_profile_members_share_readers_and_group_counters():
    reg = Registry()
    group = reg.group(THING, "fleet")
    profile = reg.profile(THING, {"memexport_thing_items": len,
                                  "memexport_thing_largest_items": len})
    boxes = [Box([0] * i) for i in range(1, 4)]
    comps = [reg.register(b, THING, group, profile) for b in boxes]
    assert comps[0].counter("memexport_thing_requests_total", "hit") is \
        comps[2].counter("memexport_thing_requests_total", "hit")
    comps[0].counter("memexport_thing_requests_total", "hit").inc()
    s = samples(reg)
    assert s[("memexport_thing_items", (("thing", "fleet"),))] == 6
    assert s[("memexport_thing_largest_items", (("thing", "fleet"),))] == 3
    assert s[("memexport_things", (("thing", "fleet"),))] == 3
    comps[1].gauge("memexport_thing_bytes", lambda o: 100)  # copy on write: others unchanged
    assert samples(reg)[("memexport_thing_bytes", (("thing", "fleet"),))] == 100
    with pytest.raises(ValueError, match="memexport_thing_nope"):
        reg.profile(THING, {"memexport_thing_nope": len})
    with pytest.raises(ValueError, match="memexport_things_created_total"):
        reg.profile(THING, {"memexport_things_created_total": len})


def test_many_short_lived_members_are_folded_without_a_scrape():
    reg = Registry()
    group = reg.group(THING, "short")
    for _ in range(5000):
        reg.register(Box(), THING, group)
    # Members are folded in batches by register itself, so memory stays bounded.
    assert len(group.members) <= 1100
    s = samples(reg)
    assert s[("memexport_things_created_total", (("thing", "short"),))] == 5000
    assert s[("memexport_things_finalized_total", (("thing", "short"),))] == 5000
    assert s[("memexport_things", (("thing", "short"),))] == 0


def test_reader_returning_a_non_number_is_counted_not_fatal():
    reg = Registry()
    box = Box([1, 2])
    box.pulled = "many"  # a pulled counter reading a str
    comp = track(reg, box, "odd")
    comp.gauge("memexport_thing_bytes", lambda o: ["not", "a", "number"])
    s = samples(reg)
    assert s[("memexport_thing_items", (("thing", "odd"),))] == 2
    assert ("memexport_thing_bytes", (("thing", "odd"),)) not in s
    assert s[("memexport_thing_pulled_total", (("thing", "odd"),))] == 0
    assert s[("memexport_collector_errors_total", (("collector", "thing"),))] == 2


def test_budget_for_a_kind_before_any_object_of_it():
    reg = Registry()  # THING is defined (its module imported) but nothing registered here
    memexport.budget(4096, kind="thing", name="later", registry=reg)
    assert samples(reg)[("memexport_thing_budget_bytes", (("thing", "later"),))] == 4096
