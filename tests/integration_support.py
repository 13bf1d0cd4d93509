"""Helpers shared by the tests of memexport's integrations (tests/test_integrations_*.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from memexport.core.registry import Registry
from memexport.exporters.prometheus import register_collector

__all__ = ["exposition", "series"]


def exposition(reg: Registry) -> str:
    """The Prometheus text exposition of a private registry, as a real scrape renders it."""
    prom = CollectorRegistry()
    register_collector(prom, reg)
    return generate_latest(prom).decode()


def series(reg: Registry, label: str, name: str) -> dict[str, float]:
    """``{metric-without-memexport_-prefix[extra labels]: value}`` of one component name."""
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(exposition(reg)):
        for s in fam.samples:
            lab = dict(s.labels)
            if lab.pop(label, None) != name or "le" in lab or s.name.endswith("_created"):
                continue
            short = s.name.removeprefix("memexport_")
            extra = ",".join(f"{v}" for _k, v in sorted(lab.items()))
            out[f"{short}[{extra}]" if extra else short] = s.value
    return out
