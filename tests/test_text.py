"""memexport's own exposition writer is byte for byte prometheus_client's, in both formats.

The demo's every part (every kind, adapters, histograms with and without labels, budgets,
the process collector's sources, memexport's own families) is read once into the text sink and
once through ``to_prometheus`` + prometheus_client's encoders, in a subprocess of its own.
"""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

from memexport.core.counters import HistogramValue
from memexport.core.model import Family
from memexport.core.registry import Registry
from memexport.exporters.text import TextSink, go_string, render

SCRIPT = r"""
import sys
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as om_latest
import memexport
from memexport.demo.app import load_parts
from memexport.exporters.prometheus import register_collector
from memexport.exporters.text import render
from memexport.process.collector import ProcessCollector

parts = load_parts("leak")
for n in range(30):
    for part in parts:
        part.step(n)
memexport.budget(2**30)
memexport.budget(2**20, kind="cache", name="embeddings")
collector = ProcessCollector(tracemalloc=True)
collector.tick()
memexport.REGISTRY.add_source("process-test", collector.families)
prom = CollectorRegistry(auto_describe=True)
register_collector(prom, memexport.REGISTRY)
for om in (False, True):
    # Values move between two reads (clocks, RSS): compare two pairs, each read back to back,
    # on everything but the lines whose value changed.
    ours = render(memexport.REGISTRY, om)
    theirs = (om_latest if om else generate_latest)(prom).decode()
    if om:
        assert theirs.endswith("# EOF\n"), theirs[-20:]
        theirs = theirs[: -len("# EOF\n")]
    a, b = ours.splitlines(), theirs.splitlines()
    assert len(a) == len(b), (om, len(a), len(b))
    same = sum(x == y for x, y in zip(a, b))
    for x, y in zip(a, b):
        if x != y:
            assert x.rsplit(" ", 1)[0] == y.rsplit(" ", 1)[0], (om, x, y)
    print(om, len(a), same)
"""


def test_the_demo_renders_as_prometheus_client_renders_it_in_both_formats() -> None:
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    for line in res.stdout.splitlines():
        _om, lines, same = line.split()
        assert int(lines) > 500 and int(same) > 0.9 * int(lines), line


def _pc_text(fams: list[Family], om: bool) -> str:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as om_latest

    from memexport.exporters.prometheus import to_prometheus

    class One:
        def collect(self) -> object:
            return [to_prometheus(f) for f in fams if f.samples]

    prom = CollectorRegistry()
    prom.register(One())  # type: ignore[arg-type]
    text = (om_latest if om else generate_latest)(prom).decode()
    return text.removesuffix("# EOF\n") if om else text


def test_escapes_units_histograms_and_odd_values_as_prometheus_client() -> None:
    hist = HistogramValue((0.005, 0.5, 1e7), (1, 2, 3, 4), 12.5, 4)
    fams = [
        Family("memexport_x_total", "counter", 'Help with \\ a backslash,\na newline, "quotes"',
               "", [({"b": 'quo"te', "a": "back\\slash\nnl"}, 3.0), ({}, 1e22)]),
        Family("memexport_y_seconds", "histogram", "h", "seconds",
               [({"z": "1"}, hist), ({}, hist)]),
        Family("memexport_z_bytes", "gauge", "g", "bytes",
               [({"k": "v"}, float("nan")), ({"k": "w"}, float("inf")),
                ({"k": "u"}, -float("inf")), ({"k": "t"}, 1234567.0), ({"k": "s"}, 0.1),
                ({"k": "r"}, 12345678901234567890.0), ({"k": "q"}, -5e-7)]),
        Family("memexport_empty", "gauge", "nothing", "", []),
    ]
    for om in (False, True):
        sink = TextSink(om)
        for f in fams:
            sink.family(f)
        assert sink.text() == _pc_text(fams, om)


def test_go_string_matches_prometheus_client() -> None:
    from prometheus_client.utils import floatToGoString

    for v in (0, 1, -1, 0.5, 1e6, 999999.0, 1e16, 1.5e300, 5e-324, 123456.789, 2**53,
              float("inf"), -float("inf"), float("nan"), -0.0, 7):
        assert go_string(v) == floatToGoString(v), v  # type: ignore[no-untyped-call]


def test_an_empty_registry_renders_nothing_but_memexport_own_families() -> None:
    text = render(Registry())
    assert "memexport_collector_errors_total" in text and "memexport_cache" not in text
