"""Bounded series and bounded memory per name, whatever the app passes.

Issue 11 item 11: ``budget(kind=, name=)`` bypassed the per-kind name cap (10,000 names ->
10,000 budget series); item 13: each cleanup kept one dict entry per distinct exception
type, uncapped. Names past the cap fold into ``__overflow__`` and are counted.
"""

from __future__ import annotations

import os
import tracemalloc
from typing import Any

import memexport
from tests.adversarial.support import SRC, Registry, prometheus_text, samples

CAP = 50


def series_of(reg: Registry, metric: str) -> int:
    return sum(1 for (m, _ls) in samples(reg) if m == metric)


def test_budget_names_are_capped_like_component_names() -> None:
    reg = Registry(max_names_per_kind=CAP)
    for i in range(2_000):
        memexport.budget(1e6, kind="cache", name=f"budget{i}", registry=reg)
    assert series_of(reg, "memexport_cache_budget_bytes") <= CAP
    overflow = [v for (m, ls), v in samples(reg).items()
                if m == "memexport_series_overflow_total" and dict(ls)["kind"] == "cache"]
    assert overflow and overflow[0] >= 2_000 - CAP


def test_component_names_are_capped_for_every_kind() -> None:
    reg = Registry(max_names_per_kind=CAP)
    keep: list[Any] = []
    for i in range(1_000):
        keep.append(memexport.cache({}, name=f"c{i}", registry=reg))
        keep.append(memexport.conversation([], name=f"h{i}", registry=reg))
    assert series_of(reg, "memexport_cache_items") <= CAP + 1
    assert series_of(reg, "memexport_conversation_messages") <= CAP + 1
    assert 'cache="__overflow__"' in prometheus_text(reg)


def test_cleanup_exception_types_are_capped_in_series_and_memory() -> None:
    reg = Registry()
    kinds = [type(f"Failure{i}", (Exception,), {}) for i in range(2_100)]
    state = {"i": 0}

    def flaky() -> None:
        state["i"] += 1
        raise kinds[state["i"] - 1]()

    c = memexport.cleanup(flaky, name="flaky", registry=reg)

    def fail(n: int) -> None:
        for _ in range(n):
            try:
                c()
            except Exception:
                pass

    fail(100)
    samples(reg)  # a scrape folds the pending durations (bounded buffers, not per type)
    tracemalloc.start()
    try:
        before = _memexport_bytes()
        fail(2_000)  # 2,000 exception types never seen before
        samples(reg)
        grown = _memexport_bytes() - before
    finally:
        tracemalloc.stop()
    assert grown < 16_000, grown  # uncapped: one entry per type (> 100 KB for 2,000)
    failures = {dict(ls)["exception"]: v for (m, ls), v in samples(reg).items()
                if m == "memexport_cleanup_failures_total"}
    assert len(failures) <= 21
    assert sum(failures.values()) == 2_100


def _memexport_bytes() -> int:
    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, os.path.join(SRC, "memexport", "*"))])
    return sum(stat.size for stat in snap.statistics("filename"))
