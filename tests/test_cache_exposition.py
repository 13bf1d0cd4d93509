"""Every kind of cache on one exposition: exact values scraped over HTTP, promtool-clean."""

from __future__ import annotations

import functools
import subprocess
import urllib.request
from collections import OrderedDict

import cachetools
import pytest
from conftest import free_port, require_binary
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_cache import MemoryBoundedLRUCache

import memexport
from memexport.core.registry import Registry
from memexport.exporters.prometheus import register_collector


def populated() -> tuple[Registry, list[object]]:
    """One cache of every supported kind after a scripted sequence of operations."""
    reg = Registry()
    keep: list[object] = []

    @functools.lru_cache(maxsize=2)
    def square(x: int) -> int:
        return x * x

    keep.append(memexport.cache(square, name="fn", registry=reg))
    for x in (1, 2, 1, 3):  # hit 1, misses 3, evictions 1
        square(x)
    lru = memexport.cache(cachetools.LRUCache(maxsize=2), name="lru", registry=reg)
    for i in range(3):
        lru[i] = str(i)
    lru.get(2)
    keep.append(lru)
    sized = memexport.cache(cachetools.LRUCache(maxsize=10, getsizeof=len), name="sized",
                            registry=reg)
    sized["a"] = "x" * 6
    sized["b"] = "y" * 6  # evicts a: 6 bytes
    keep.append(sized)
    d = memexport.cache(OrderedDict(), name="dict", registry=reg)
    d["k"] = 1
    d.get("k")
    d.get("nope")
    del d["k"]
    keep.append(d)
    guide = memexport.cache(MemoryBoundedLRUCache(max_items=1), name="guide", registry=reg)
    guide.put("a", 1)
    guide.put("b", 2)
    guide.get("a")
    keep.append(guide)
    memexport.budget(1 << 20, kind="cache", name="lru", registry=reg)
    return reg, keep


EXPECTED = {
    ('memexport_cache_requests_total', (("cache", "fn"), ("result", "hit"))): 1,
    ('memexport_cache_requests_total', (("cache", "fn"), ("result", "miss"))): 3,
    ('memexport_cache_evictions_total', (("cache", "fn"), ("reason", "capacity"))): 1,
    ('memexport_cache_items', (("cache", "fn"),)): 2,
    ('memexport_cache_max_items', (("cache", "fn"),)): 2,
    ('memexport_cache_puts_total', (("cache", "lru"),)): 3,
    ('memexport_cache_evictions_total', (("cache", "lru"), ("reason", "capacity"))): 1,
    ('memexport_cache_requests_total', (("cache", "lru"), ("result", "hit"))): 1,
    ('memexport_cache_items', (("cache", "lru"),)): 2,
    ('memexport_cache_budget_bytes', (("cache", "lru"),)): 1 << 20,
    ('memexport_cache_bytes', (("cache", "sized"),)): 6,
    ('memexport_cache_max_bytes', (("cache", "sized"),)): 10,
    ('memexport_cache_evicted_bytes_total', (("cache", "sized"),)): 6,
    ('memexport_cache_requests_total', (("cache", "dict"), ("result", "hit"))): 1,
    ('memexport_cache_requests_total', (("cache", "dict"), ("result", "miss"))): 1,
    ('memexport_cache_evictions_total', (("cache", "dict"), ("reason", "explicit"))): 1,
    ('memexport_cache_items', (("cache", "dict"),)): 0,
    ('memexport_cache_evictions_total', (("cache", "guide"), ("reason", "capacity"))): 1,
    ('memexport_cache_requests_total', (("cache", "guide"), ("result", "miss"))): 1,
    ('memexport_cache_max_bytes', (("cache", "guide"),)): 50 * 2**20,
}


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def served() -> object:
    reg, keep = populated()
    prom = CollectorRegistry(auto_describe=True)
    register_collector(prom, reg)
    from prometheus_client import start_http_server

    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=prom)
    try:
        yield port, keep
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_every_kind_shows_exact_values_on_metrics(served: tuple[int, list[object]]) -> None:
    port, _keep = served
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    got = parse(text)
    wrong = {k: (got.get(k), v) for k, v in EXPECTED.items() if got.get(k) != v}
    assert not wrong, wrong


def test_exposition_with_caches_passes_promtool_check_metrics() -> None:
    promtool = require_binary("promtool")
    reg, _keep = populated()
    prom = CollectorRegistry(auto_describe=True)
    register_collector(prom, reg)
    text = generate_latest(prom).decode()
    assert "memexport_cache_evicted_bytes_total" in text
    res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0 and not res.stdout.strip() and not res.stderr.strip(), (
        res.stdout + res.stderr + text)
