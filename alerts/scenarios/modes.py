"""The documented deployment modes, as transformations of a single-process history.

* ``multiprocess``: prometheus_client's multiprocess mode (gunicorn). Process-level gauges
  come once per worker with a ``pid`` label (two workers: RSS and budget split in halves, so
  their sums stay; the limit, fds and start time the same for both); counters and component
  gauges are merged and carry no ``pid``.
* ``dual-otel``: memexport's exposition plus ``PrometheusMetricReader`` in one process: every
  ``memexport_*`` gauge and counter appears a second time with the OpenTelemetry attribute
  names (``memexport_cache_name`` instead of ``cache``, ``otel_scope_*``).
* ``dual-source``: the same duplicates told apart by a ``source`` label only.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from history import Series, labels_text, promtool_values

MODES = ("single", "multiprocess", "dual-otel", "dual-source")
PIDS = ("4101", "4102")
PER_WORKER = {
    "process_resident_memory_bytes", "process_virtual_memory_bytes",
    "process_start_time_seconds", "process_open_fds", "process_max_fds",
    "memexport_process_memory_limit_bytes", "memexport_system_memory_available_bytes",
    "memexport_process_memory_budget_bytes", "memexport_collector_duration_seconds",
    "memexport_process_uss_bytes", "memexport_process_threads",
}
SPLIT = {"process_resident_memory_bytes", "process_virtual_memory_bytes",
         "memexport_process_memory_budget_bytes"}
KIND_LABELS = {"cache", "conversation", "agent", "cleanup"}
SCOPE = (("otel_scope_name", "memexport"), ("otel_scope_schema_url", ""),
         ("otel_scope_version", "0.1.0"))

Cols = dict[Series, list[float | None]]


def _relabel(key: Series, extra: tuple[tuple[str, str], ...]) -> Series:
    name, labels = key
    return name, tuple(sorted((*labels, *extra)))


def _otel_labels(name: str, labels: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    kind = next((k for k, _ in labels if k in KIND_LABELS), None)
    out = []
    for k, v in labels:
        if k in ("job", "instance", "le"):
            out.append((k, v))
        elif k == "pool":
            out.append(("db_client_connection_pool_name", v))
        elif k == "state" and name == "memexport_pool_resources":
            out.append(("db_client_connection_state", "used" if v == "in_use" else v))
        elif k == kind:
            out.append((f"memexport_{k}_name", v))
        elif kind is not None:
            out.append((f"memexport_{kind}_{k}", v))
        else:
            out.append((f"memexport_{k}", v))
    return tuple(sorted((*out, *SCOPE)))


def transform(cols: Cols, mode: str) -> Cols:
    if mode == "single":
        return dict(cols)
    out: Cols = {}
    for key, values in cols.items():
        name, labels = key
        if mode == "multiprocess" and name in PER_WORKER:
            half = name in SPLIT
            for pid in PIDS:
                out[_relabel(key, (("pid", pid),))] = [
                    None if v is None else v / 2 if half else v for v in values]
            continue
        out[key] = values
        if name == "up" or name.endswith(("_bucket", "_count", "_sum")):
            continue
        if mode == "dual-otel" and name.startswith("memexport_"):
            out[(name, _otel_labels(name, labels))] = values
        elif mode == "dual-source" and not any(k == "source" for k, _ in labels):
            out[_relabel(key, (("source", "opentelemetry"),))] = values
    if mode == "dual-otel":
        rss = [k for k in cols if k[0] == "process_resident_memory_bytes"]
        for key in rss:  # the OpenTelemetry name of RSS: another series, not a duplicate
            out[("process_memory_usage_bytes", _relabel(key, SCOPE)[1])] = cols[key]
    return out


# -- promtool unit-test files -----------------------------------------------------------------

_TOKEN = re.compile(r"^(-?[0-9.eE+]+?)([+-])([0-9.eE]+)x(\d+)$")


def expand(values: str) -> list[float | None]:
    """promtool's ``values`` notation as a list (``None`` for ``_`` and ``stale``)."""
    out: list[float | None] = []
    for tok in values.split():
        if tok in ("_", "stale"):
            out.append(None)
        elif tok.startswith("_x"):
            out.extend([None] * int(tok[2:]))
        elif m := _TOKEN.match(tok):
            a, sign, b, n = float(m[1]), m[2], float(m[3]), int(m[4])
            step = b if sign == "+" else -b
            out.extend(a + step * i for i in range(n + 1))
        else:
            out.append(float(tok))
    return out


def parse_series(text: str) -> Series:
    name, _, rest = text.strip().partition("{")
    labels = tuple(sorted((k, v) for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest)))
    return name, labels


def transform_tests(doc: dict[str, Any], mode: str) -> dict[str, Any]:
    """A copy of a promtool test file with every test's input series in ``mode``'s shape
    (``prometheus_*`` series, Prometheus's own, stay as they are)."""
    out = copy.deepcopy(doc)
    for test in out.get("tests") or []:
        cols: Cols = {}
        keep = []
        for s in test.get("input_series") or []:
            key = parse_series(s["series"])
            if key[0].startswith("prometheus_"):
                keep.append(s)
            else:
                cols[key] = expand(str(s["values"]))
        test["input_series"] = keep + [{"series": labels_text(k), "values": promtool_values(v)}
                                       for k, v in sorted(transform(cols, mode).items())]
    return out
