"""memexport's part of ``/metrics`` written straight from the registry's rows as exposition text.

Byte for byte what prometheus_client's ``generate_latest`` (Prometheus text 0.0.4) and
``openmetrics.generate_latest`` (OpenMetrics 1.0.0, default escaping) write for the same
families through ``to_prometheus``, without a label dict, ``Sample`` or ``Metric`` per series:
each row becomes one line from a per-metric template, so a scrape of many components costs
little and leaves the cyclic GC almost nothing to track. ``tests/test_text.py`` holds both
formats to prometheus_client's output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from memexport.core.counters import HistogramValue
from memexport.core.model import Family, Kind, LabelValues, MetricType
from memexport.core.registry import Registry

__all__ = ["TextSink", "go_string", "render"]

_INF = math.inf
_MINUS_INF = -math.inf
_repr = repr


def go_string(value: float) -> str:
    """A float as prometheus_client's ``floatToGoString`` writes it (Go's exponents)."""
    d = float(value)
    if d < 1e6 and d > _MINUS_INF:  # the common case: repr as it is
        return _repr(d)
    if d != d:
        return "NaN"
    if d == _INF:
        return "+Inf"
    if d == _MINUS_INF:
        return "-Inf"
    s = _repr(d)
    dot = s.find(".")
    if dot > 6:
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return s


def _escape(value: str) -> str:
    """A label value escaped as both formats escape it (backslash, newline, double quote)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _help_text(help: str, openmetrics: bool) -> str:
    text = help.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text


class _Block:
    """One family's header and lines."""

    __slots__ = ("header", "lines", "sample")

    def __init__(self, header: str, sample: str) -> None:
        self.header = header
        self.sample = sample  # the sample name of a counter or gauge (base of a histogram)
        self.lines: list[str] = []


class _Template:
    """How one metric of one kind is written: label names in sorted order as a % template."""

    __slots__ = ("bucket", "inner", "le_at", "order")

    def __init__(self, names: Sequence[str]) -> None:
        order = sorted(range(len(names)), key=names.__getitem__)
        self.order = tuple(order)
        self.inner = ",".join(f'{names[i]}="%s"' for i in order)
        with_le = [*names, "le"]
        le_order = sorted(range(len(with_le)), key=with_le.__getitem__)
        self.le_at = le_order.index(len(names))
        self.bucket = ",".join(f'{with_le[i]}="%s"' for i in le_order)


class TextSink:
    """A ``Sink`` writing exposition text; ``text()`` is the result."""

    def __init__(self, openmetrics: bool = False) -> None:
        self.openmetrics = openmetrics
        self._blocks: list[_Block] = []
        self._by_name: dict[str, _Block] = {}
        self._templates: dict[tuple[str, str, int], _Template] = {}
        self._les: dict[tuple[float, ...], tuple[str, ...]] = {}

    # -- the sink ---------------------------------------------------------------------------

    def declare(self, name: str, type: MetricType, help: str, unit: str) -> None:
        block = self._block(name, type, help, unit)
        self._by_name[name] = block

    def row(self, metric: str, kind: Kind, name: str, values: LabelValues,
            value: float | HistogramValue) -> None:
        block = self._by_name[metric]
        key = (metric, kind.label, len(values))
        tmpl = self._templates.get(key)
        if tmpl is None:
            mdef = kind.by_name.get(metric)
            tmpl = self._templates[key] = _Template(
                [kind.label, *(mdef.labels if mdef is not None and values else ())])
        raw = (name, *values) if values else (name,)
        vals = tuple(_escape(raw[i]) for i in tmpl.order)
        if isinstance(value, HistogramValue):
            self._histogram(block, tmpl, vals, value)
        else:
            block.lines.append(f"{block.sample}{{{tmpl.inner % vals}}} {go_string(value)}\n")

    def family(self, family: Family) -> None:
        block = self._block(family.name, family.type, family.help, family.unit)
        lines = block.lines
        for labels, value in family.samples:
            names = sorted(labels)
            tmpl = _Template(names)
            vals = tuple(_escape(labels[names[i]]) for i in tmpl.order)
            if isinstance(value, HistogramValue):
                self._histogram(block, tmpl, vals, value)
            elif labels:
                lines.append(f"{block.sample}{{{tmpl.inner % vals}}} {go_string(value)}\n")
            else:
                lines.append(f"{block.sample} {go_string(value)}\n")

    def text(self) -> str:
        """The exposition of every family with samples, in declaration order."""
        out: list[str] = []
        for block in self._blocks:
            if block.lines:
                out.append(block.header)
                out.extend(block.lines)
        return "".join(out)

    # -- helpers ------------------------------------------------------------------------------

    def _block(self, name: str, type: MetricType, help: str, unit: str) -> _Block:
        base = name.removesuffix("_total") if type == "counter" else name
        shown = base if self.openmetrics else name if type == "counter" else base
        header = (f"# HELP {shown} {_help_text(help, self.openmetrics)}\n"
                  f"# TYPE {shown} {type}\n")
        if self.openmetrics and unit:
            header += f"# UNIT {shown} {unit}\n"
        block = _Block(header, base + "_total" if type == "counter" else base)
        self._blocks.append(block)
        return block

    def _histogram(self, block: _Block, tmpl: _Template, vals: tuple[str, ...],
                   value: HistogramValue) -> None:
        les = self._les.get(value.bounds)
        if les is None:
            les = self._les[value.bounds] = tuple(go_string(b) for b in value.bounds)
        base, lines = block.sample, block.lines
        at = tmpl.le_at
        head, tail = vals[:at], vals[at:]
        bucket = tmpl.bucket
        for le, count in zip(les, value.cumulative, strict=False):
            lines.append(f"{base}_bucket{{{bucket % (*head, le, *tail)}}} {go_string(count)}\n")
        lines.append(f"{base}_bucket{{{bucket % (*head, '+Inf', *tail)}}} "
                     f"{go_string(value.count)}\n")
        if vals:
            labels = tmpl.inner % vals
            lines.append(f"{base}_count{{{labels}}} {go_string(value.count)}\n")
            lines.append(f"{base}_sum{{{labels}}} {go_string(value.sum)}\n")
        else:
            lines.append(f"{base}_count {go_string(value.count)}\n")
            lines.append(f"{base}_sum {go_string(value.sum)}\n")


def render(registry: Registry, openmetrics: bool = False) -> str:
    """``registry``'s exposition as prometheus_client would write it (without ``# EOF``)."""
    sink = TextSink(openmetrics)
    registry.collect_into(sink)
    return sink.text()
