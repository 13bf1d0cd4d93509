"""What every test shares: one way to scrape a registry, one fake kind, and one copy of the
guide's classes (the shared seed beside the checkout, else the package's verbatim copy)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from memexport.core.model import Kind, MetricDef
from memexport.core.registry import Registry
from memexport.exporters.prometheus import register_collector

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT.parent / "shared" / "seed" / "guide_classes.py"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def exposition(reg: Registry) -> str:
    """The registry's /metrics text, through prometheus_client."""
    prom = CollectorRegistry(auto_describe=True)
    register_collector(prom, reg)
    return generate_latest(prom).decode()


def samples(reg: Registry) -> Samples:
    """``{(sample name, sorted labels): value}`` of one scrape."""
    out: Samples = {}
    for fam in text_string_to_metric_families(exposition(reg)):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def view(reg: Registry, label: str, name: str) -> dict[str, float]:
    """The samples of one component name, keyed ``metric`` or ``metric{other label values}``
    (histogram buckets left out)."""
    out: dict[str, float] = {}
    for (metric, labels), value in samples(reg).items():
        d = dict(labels)
        if d.pop(label, None) != name or "le" in d:
            continue
        out[metric if not d else f"{metric}{{{','.join(d.values())}}}"] = value
    return out


def pool_values(reg: Registry, name: str) -> dict[str, float]:
    """``{metric[state]: value}`` of one pool, e.g. ``resources[in_use]``, ``acquires_total``."""
    out: dict[str, float] = {}
    for (metric, labels), value in samples(reg).items():
        lab = dict(labels)
        if lab.get("pool") != name or "le" in lab:
            continue
        short = metric.removeprefix("memexport_pool_")
        out[f"{short}[{lab['state']}]" if "state" in lab else short] = value
    return out


def load_guide() -> ModuleType:
    """The guide's classes as users have them: the shared seed, else memexport's copy."""
    if SEED.exists():
        name = "memexport_test_guide_classes"
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, SEED)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        return sys.modules[name]
    from memexport.demo import guide as copy

    return copy


guide = load_guide()

#: A kind of the tests' own, with one metric of every type and source.
THING = Kind(
    "thing",
    "thing",
    (
        MetricDef("memexport_thing_items", "gauge", "Items."),
        MetricDef("memexport_thing_largest_items", "gauge", "Largest.", agg="max"),
        MetricDef("memexport_thing_bytes", "gauge", "Bytes.", "bytes"),
        MetricDef("memexport_things", "gauge", "Live things.", source="live"),
        MetricDef("memexport_things_created_total", "counter", "Created.", source="created"),
        MetricDef("memexport_things_finalized_total", "counter", "Gone.", source="finalized"),
        MetricDef("memexport_thing_requests_total", "counter", "Requests.", labels=("result",)),
        MetricDef("memexport_thing_evicted_bytes_total", "counter", "Evicted.", "bytes"),
        MetricDef("memexport_thing_pulled_total", "counter", "Pulled."),
        MetricDef("memexport_thing_wait_seconds", "histogram", "Wait.", "seconds",
                  buckets=(0.1, 1.0)),
    ),
    bytes_metric="memexport_thing_bytes",
)
