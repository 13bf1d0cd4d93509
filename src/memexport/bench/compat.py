"""Accessors the bench needs, through the public API where it has them, so the cases built on
them also run against an older memexport (the before/after table of docs/performance.md)."""

from __future__ import annotations

import importlib
from typing import Any

import memexport

__all__ = ["exposition", "guide", "new_registry", "process_collector", "prometheus_registry",
           "seconds_buckets", "settle_sizes"]


def new_registry(max_names_per_kind: int = 1000) -> Any:
    """A private registry (``memexport.REGISTRY``'s class), so bench components never reach
    an app's /metrics."""
    return type(memexport.REGISTRY)(max_names_per_kind=max_names_per_kind)


def _first(*modules: str) -> Any:
    for name in modules:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(f"none of {modules} is importable", name=modules[0])


def prometheus_registry(registry: Any) -> Any:
    """A prometheus_client ``CollectorRegistry`` serving ``registry`` alone."""
    from prometheus_client import CollectorRegistry

    exporter = _first("memexport.exporters.prometheus", "memexport.prometheus")
    prom = CollectorRegistry(auto_describe=False)
    exporter.register_collector(prom, registry)
    return prom


def exposition(prom: Any) -> str:
    """One scrape of a prometheus_client registry, as text."""
    from prometheus_client import generate_latest

    return str(generate_latest(prom).decode())


def process_collector(registry: Any, **options: Any) -> Any:
    """A ``ProcessCollector`` on ``registry`` (not started: ``tick()`` takes a reading)."""
    mod = _first("memexport.process.collector", "memexport.process")
    return mod.ProcessCollector(registry, **options)


def settle_sizes(registry: Any, max_rounds: int = 400) -> tuple[int, float | None]:
    """Run the registry's tick jobs (what each collector tick runs: the sizer) until every
    sampled component has a size, as in an app whose collector has run for a while; returns
    (rounds, coverage). Without a coverage to read (older versions), ten rounds."""
    sizer = getattr(registry, "sizer", None)
    coverage = getattr(sizer, "coverage", None)
    rounds = 0
    while rounds < max_rounds:
        registry.run_tick_jobs()
        rounds += 1
        share = coverage() if coverage is not None else None
        if (share is None and coverage is not None) or (share is not None and share >= 1.0):
            return rounds, share
        if coverage is None and rounds >= 10:
            return rounds, None
    return rounds, coverage() if coverage is not None else None


def seconds_buckets() -> tuple[float, ...]:
    """The histogram buckets memexport uses for seconds (prometheus_client's if unknown)."""
    try:
        from memexport.core.counters import DEFAULT_SECONDS_BUCKETS
    except ImportError:
        from prometheus_client.metrics import Histogram

        return tuple(Histogram.DEFAULT_BUCKETS)
    return tuple(DEFAULT_SECONDS_BUCKETS)


def guide() -> Any:
    """The guide's classes (memory-cleanup-guide.txt), as the package ships them."""
    return _first("memexport.demo.guide")
