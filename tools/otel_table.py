"""Docs tooling: print the OpenTelemetry mapping table of docs/metrics.md.

    python tools/otel_table.py [docs/metrics.md]

prints the table of the ``## OpenTelemetry mapping`` section, built from the mapping rules of
``memexport.exporters.otel.naming`` and every ``Kind`` a memexport module declares;
tests/test_otel.py fails when the committed table differs. Not part of the installed package.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from memexport.core.model import Kind, MetricDef
from memexport.exporters.otel.naming import STANDARD, HistogramMode, map_family

ROOT = Path(__file__).resolve().parent.parent

def catalogue_rows(text: str) -> list[tuple[str, str, str, list[str]]]:
    """``(name, type, unit, labels)`` of every metric row of docs/metrics.md's kind tables."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`")
        if not name.replace("_", "").replace(":", "").isalnum():
            continue
        labels = [c.strip().strip("`") for c in cells[3].split(",") if c.strip().strip("`")]
        rows.append((name, cells[1], cells[2], labels))
    return rows


def known_kinds() -> list[Kind]:
    """Every ``Kind`` declared by a module of the memexport package (for the docs table)."""
    import importlib
    import pkgutil

    import memexport

    kinds: dict[str, Kind] = {}
    for info in pkgutil.walk_packages(memexport.__path__, "memexport."):
        if info.name.startswith(("memexport.bench", "memexport.demo", "memexport.cli",
                                  "memexport.__main__")):
            continue
        try:
            mod = importlib.import_module(info.name)
        except Exception:  # an optional integration whose library is missing
            continue
        for value in vars(mod).values():
            if isinstance(value, Kind):
                kinds.setdefault(value.name, value)
    return [kinds[name] for name in sorted(kinds)]


#: Prometheus series with no OpenTelemetry instrument, and where their information goes.
NOT_EXPORTED = {
    "python_info": "resource attributes `process.runtime.name`, `process.runtime.version` "
                   "(SDK process resource detector)",
}


def mapping_table(catalogue: str, histograms: HistogramMode = "buckets") -> str:
    """The markdown table of docs/metrics.md's ``## OpenTelemetry mapping`` section: the
    standard series, the catalogue's series outside any kind, then every kind declared by a
    memexport module (sorted by kind), each metric followed by its budget."""
    kinds = known_kinds()
    kind_metrics = {m.name for k in kinds for m in k.metrics} | {
        k.budget_metric for k in kinds if k.bytes_metric}
    lines = ["| Prometheus name | OpenTelemetry name | instrument | unit | attributes |",
             "|---|---|---|---|---|"]
    seen: set[str] = set()

    def rows(name: str, type_: str, unit: str, labels: Sequence[str], kind: Kind | None = None,
             mdef: MetricDef | None = None) -> None:
        if name in seen:
            return
        seen.add(name)
        if name in NOT_EXPORTED:
            lines.append(f"| `{name}` | — | — | — | {NOT_EXPORTED[name]} |")
            return
        for m in map_family(name, type_, unit, labels, kind, mdef, histograms):
            prom = f"{name}_{m.part}" if m.part else m.prometheus
            attrs = ", ".join(f"`{a}`" for a in m.attributes)
            lines.append(f"| `{prom}` | `{m.name}` | {m.instrument} | `{m.unit}` | {attrs} |")

    for m in STANDARD:
        seen.add(m.prometheus)
        attrs = ", ".join(f"`{a}`" for a in m.attributes)
        lines.append(f"| `{m.prometheus}` | `{m.name}` | {m.instrument} | `{m.unit}` | "
                     f"{attrs} |")
    for name, type_, unit, labels in catalogue_rows(catalogue):
        if name not in kind_metrics and type_ in ("gauge", "counter", "histogram", "info"):
            rows(name, type_, unit, labels)
    for kind in kinds:
        for mdef in kind.metrics:
            rows(mdef.name, mdef.type, mdef.unit, [kind.label, *mdef.labels], kind, mdef)
        if kind.bytes_metric:
            rows(kind.budget_metric, "gauge", "bytes", [kind.label], kind)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python tools/otel_table.py [docs/metrics.md]``: print the OpenTelemetry mapping table."""
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(args[0]) if args else ROOT / "docs/metrics.md"
    sys.stdout.write(mapping_table(path.read_text()) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))
    raise SystemExit(main())
