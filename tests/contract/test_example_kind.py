"""A new kind is one module (tests/example_kind/vectorstore.py, as docs/adding-a-kind.md
builds it): it gets the registry, names and overflow, the double-instrumentation rule, weak
tracking, sampled bytes and uninstrument from the shared machinery, with nothing else to
change."""

from __future__ import annotations

import gc
import sys
import weakref
from pathlib import Path
from typing import Any

import pytest
from helpers import view

import memexport
from memexport.core.registry import Registry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "example_kind"))

from vectorstore import vector_store


class TinyStore:
    def __init__(self) -> None:
        self.vectors: dict[str, list[float]] = {}

    def add(self, key: str, vector: list[float]) -> None:
        self.vectors[key] = vector

    def query(self, vector: list[float], k: int = 5) -> list[str]:
        def dist(item: tuple[str, list[float]]) -> float:
            return sum((a - b) ** 2 for a, b in zip(item[1], vector, strict=True))
        return [key for key, _ in sorted(self.vectors.items(), key=dist)[:k]]


def test_the_example_kind_works_end_to_end() -> None:
    reg = Registry()
    store = vector_store(TinyStore(), "docs", registry=reg)
    for i in range(10):
        store.add(f"d{i}", [float(i)] * 8)
    assert store.query([3.0] * 8, k=1) == ["d3"]
    v = view(reg, "vector_store", "docs")
    assert v["memexport_vector_store_vectors"] == 10
    assert v["memexport_vector_store_upserts_total"] == 10
    assert v["memexport_vector_store_queries_total"] == 1
    assert v["memexport_vector_store_bytes"] > 10 * 8 * 24


def test_the_shared_rules_apply_to_it() -> None:
    reg = Registry()
    raw = TinyStore()
    store = vector_store(raw, "rules", registry=reg)
    assert vector_store(store, "rules", registry=reg) is store
    with pytest.raises(ValueError, match="already instrumented as vector_store 'rules'"):
        vector_store(raw, "other", registry=reg)
    with pytest.raises(ValueError, match="name"):
        vector_store(TinyStore(), "bad name", registry=reg)
    with pytest.raises(TypeError, match="does not recognise"):
        vector_store(object(), "x", registry=reg)
    assert memexport.uninstrument(store) is raw
    ref: Any = weakref.ref(raw)
    del raw, store
    gc.collect()
    assert ref() is None
