"""Helpers shared by the tests of memexport's integrations (tests/test_integrations_*.py)."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from memexport.core.registry import Registry
from memexport.exporters.prometheus import register_collector

__all__ = ["assert_catalogued", "exposition", "series"]

ROOT = Path(__file__).resolve().parent.parent
_ROW = re.compile(r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*(gauge|counter|histogram|info)\s*\|")


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


def assert_catalogued(reg: Registry, *names: str) -> None:
    """Each family ``names`` is exported by ``reg`` and listed, with its type, in
    docs/metrics.md (for series the demo behind tests/test_catalogue.py does not make)."""
    listed: dict[str, str] = {}
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        m = _ROW.match(line)
        if m:
            name, typ = m.groups()
            listed[name.removesuffix("_total") if typ == "counter" else name] = typ
    exported = {f.name: f.type for f in text_string_to_metric_families(exposition(reg))}
    for name in names:
        assert name in exported, f"{name} not exported"
        assert listed.get(name) == exported[name], f"{name}: {exported[name]} vs docs/metrics.md"
