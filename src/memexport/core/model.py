"""The exporter-neutral metric model: metric definitions, component kinds, and read families.

Component kinds declare their metrics once (``MetricDef`` inside a ``Kind``); the registry
reads them into ``Family`` objects at each scrape; the Prometheus and OpenTelemetry exporters
only translate families. Nothing here touches the application's hot path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from memexport.core.counters import DEFAULT_SECONDS_BUCKETS, HistogramValue

__all__ = ["Family", "Kind", "MetricDef", "MetricType", "Sample", "check_metric_name",
           "known_kind"]

MetricType = Literal["gauge", "counter", "histogram"]
Aggregation = Literal["sum", "max"]
#: Where a kind-level series comes from: each live member's readings (``member``), the number
#: of live members (``live``), members ever registered (``created``) or finalized
#: (``finalized``), or a reader of the whole group (``group``: pending acquires of a pool name).
Source = Literal["member", "live", "created", "finalized", "group"]

_METRIC_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_UNITS = ("", "bytes", "seconds", "ratio")

LabelValues = tuple[str, ...]

#: Every kind defined in this process (by the kind modules at import), by name, so that a
#: registry can take a budget for a kind before any object of it is instrumented.
_KNOWN_KINDS: dict[str, Kind] = {}


def known_kind(name: str) -> Kind | None:
    """The kind called ``name`` if one was defined (its module imported), else None."""
    return _KNOWN_KINDS.get(name)
Sample = tuple[dict[str, str], "float | HistogramValue"]


def check_metric_name(name: str) -> str:
    if not isinstance(name, str) or not _METRIC_RE.match(name):
        raise ValueError(f"invalid metric name {name!r}")
    return name


@dataclass(frozen=True)
class MetricDef:
    """One metric of a component kind, as exposed to Prometheus (counters end in ``_total``)."""

    name: str
    type: MetricType
    help: str
    unit: str = ""
    labels: tuple[str, ...] = ()
    agg: Aggregation = "sum"
    source: Source = "member"
    buckets: tuple[float, ...] = DEFAULT_SECONDS_BUCKETS
    #: OpenTelemetry instrument name where a semantic convention exists (pools use the
    #: ``db.client.connection.*`` shapes); None derives ``memexport.<kind>.<rest>``.
    otel_name: str | None = None

    def __post_init__(self) -> None:
        check_metric_name(self.name)
        if self.type == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name!r} must end in _total")
        if self.type != "counter" and self.name.endswith("_total"):
            raise ValueError(f"{self.type} {self.name!r} must not end in _total")
        if self.unit not in _UNITS:
            raise ValueError(f"unit {self.unit!r} of {self.name!r} is not one of {_UNITS}")
        base = self.name.removesuffix("_total")
        if self.unit and not base.endswith("_" + self.unit):
            raise ValueError(f"{self.name!r} must carry its unit {self.unit!r} in the name")
        for label in self.labels:
            if not _LABEL_RE.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} in {self.name!r}")


@dataclass(frozen=True)
class Kind:
    """A component kind (``cache``, ``pool``, ...): its label and the metrics its groups export.

    ``bytes_metric`` names the gauge a ``memexport.budget(kind=..., name=...)`` bounds; the budget
    is exported as ``memexport_<kind>_budget_bytes`` with the same label, next to it.
    """

    name: str
    label: str
    metrics: tuple[MetricDef, ...]
    bytes_metric: str | None = None
    by_name: dict[str, MetricDef] = field(init=False, repr=False, compare=False)
    #: The metrics the kind itself defines, before any adapter's ``extend``.
    own: tuple[MetricDef, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _LABEL_RE.match(self.name):
            raise ValueError(f"invalid kind name {self.name!r}")
        if not _LABEL_RE.match(self.label):
            raise ValueError(f"invalid label name {self.label!r} for kind {self.name!r}")
        by_name = {m.name: m for m in self.metrics}
        if len(by_name) != len(self.metrics):
            raise ValueError(f"kind {self.name!r} defines a metric twice")
        for m in self.metrics:
            if self.label in m.labels:
                raise ValueError(f"{m.name!r} repeats the kind label {self.label!r}")
        if self.bytes_metric is not None and self.bytes_metric not in by_name:
            raise ValueError(f"bytes_metric {self.bytes_metric!r} is not a metric of {self.name!r}")
        object.__setattr__(self, "by_name", by_name)
        object.__setattr__(self, "own", self.metrics)
        _KNOWN_KINDS.setdefault(self.name, self)

    def extend(self, *metrics: MetricDef) -> None:
        """Add metrics that an adapter owns (a library-only gauge) to this kind, once.

        Adding a metric again as it is is a no-op; a different one of the same name is a
        ``ValueError``.
        """
        by_name = dict(self.by_name)
        new = []
        for m in metrics:
            known = by_name.get(m.name)
            if known is not None:
                if known != m:
                    raise ValueError(f"kind {self.name!r} already has a different {m.name!r}")
                continue
            if self.label in m.labels:
                raise ValueError(f"{m.name!r} repeats the kind label {self.label!r}")
            by_name[m.name] = m
            new.append(m)
        if new:
            object.__setattr__(self, "metrics", (*self.metrics, *new))
            object.__setattr__(self, "by_name", by_name)

    @property
    def budget_metric(self) -> str:
        return f"memexport_{self.name}_budget_bytes"


@dataclass
class Family:
    """One metric family as read at a scrape: definition plus samples (labels, value)."""

    name: str
    type: MetricType
    help: str
    unit: str = ""
    samples: list[Sample] = field(default_factory=list)

    def add(self, labels: dict[str, str], value: float | HistogramValue) -> None:
        self.samples.append((labels, value))
