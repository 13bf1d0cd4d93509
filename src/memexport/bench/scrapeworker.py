"""One side of a scrape comparison, in a process of its own (``python -m
memexport.bench.scrapeworker SPEC``), so that each side's heap, and so the cyclic GC's work
during its scrapes, is its own, as in two separate apps.

Both sides are scraped through their real serving path: the ``/metrics`` WSGI app their HTTP
server runs (memexport's ``make_wsgi_app``: ``exporters.encode``, memexport's series written
straight to text; prometheus_client's ``make_wsgi_app``: ``generate_latest``), called in this
thread, and a ``GET /metrics`` over loopback to the server each starts (``start_http_server``).

Sides: ``memexport`` (``n`` cachetools caches, or dicts without cachetools, each with its own
name, instrumented in a private registry); ``prometheus_client`` (the same bare caches, plus a
custom collector yielding the families the memexport side wrote: ``CounterMetricFamily`` and
``GaugeMetricFamily`` built at each collect, values as read from that exposition, no
``_created``); ``sessions`` (``n`` guide conversation managers of one name).

Prints one JSON object: the first scrape (of a registry no tick has sized yet), then, once the
registry's tick jobs have sized every component (the steady state of an app whose collector
has run a while; the exposition checked to no longer change), ``rounds`` scrapes of each
format with the GC on (interleaved), ``rounds`` of text 0.0.4 with it off, in ns of the
scraping thread's CPU time (the GC's pauses included; other processes on the machine not),
and ``rounds`` HTTP scrapes in ns of the process's CPU time (client and server threads).
The bodies of one scrape of each format go, as JSON, to the file named in the spec.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from memexport.bench import compat

__all__ = ["FORMATS", "main"]

VALUE = {"role": "assistant", "content": "x" * 200}

#: The Accept headers scraped: none (curl: text 0.0.4); the installed Prometheus' (2.42:
#: OpenMetrics 1.0.0); a UTF-8-escaping OpenMetrics request as Prometheus 3 may send it.
FORMATS = {
    "text": "",
    "openmetrics": compat.PROMETHEUS_ACCEPT,
    "utf8": ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
             "application/openmetrics-text;version=0.0.1;q=0.5,"
             "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"),
}


def _caches(n: int) -> tuple[list[Any], str]:
    try:
        import cachetools
    except ImportError:
        caches: list[Any] = [{} for _ in range(n)]
        what = "dict"
    else:
        caches = [cachetools.LRUCache(maxsize=100) for _ in range(n)]
        what = "cachetools.LRUCache"
    for c in caches:
        for i in range(10):
            c[f"k{i}"] = VALUE
    return caches, what


def _memexport(n: int) -> tuple[Any, Any, list[Any], str]:
    import memexport

    reg = compat.new_registry(max_names_per_kind=n + 10)
    bare, what = _caches(n)
    caches = [memexport.cache(c, name=f"cache{i}", registry=reg) for i, c in enumerate(bare)]
    for c in caches:
        c["k1"]  # a hit
        c.get("absent")  # a miss
    return compat.prometheus_registry(reg), reg, caches, what


def _sessions(n: int) -> tuple[Any, Any, list[Any], str]:
    import memexport

    reg = compat.new_registry()
    cls = compat.guide().MemoryEfficientConversationManager
    keep = []
    for _ in range(n):
        m = memexport.conversation(cls(), name="sessions", registry=reg)
        for _ in range(10):
            m.add_message({"role": "user", "content": "status of order 1234?",
                           "timestamp": 1.0})
        keep.append(m)
    return compat.prometheus_registry(reg), reg, keep, "guide conversation managers"


class MirrorCollector:
    """A custom collector yielding the families of an OpenMetrics exposition, built at each
    collect as an app's own collector would build them (one ``add_metric`` per series)."""

    def __init__(self, text: str) -> None:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families

        self.families: list[tuple[str, str, str, str, list[str], list[Any]]] = []
        for fam in text_string_to_metric_families(text):  # type: ignore[no-untyped-call]
            if fam.type not in ("counter", "gauge"):
                raise ValueError(f"the mirror has no {fam.type} (family {fam.name})")
            names = list(fam.samples[0].labels) if fam.samples else []
            rows = [([s.labels[k] for k in names], s.value) for s in fam.samples]
            self.families.append((fam.type, fam.name, fam.documentation, fam.unit, names, rows))

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for type_, name, doc, unit, names, rows in self.families:
            fam: Any
            if type_ == "counter":
                fam = CounterMetricFamily(name, doc, labels=names, unit=unit, created=None)
            else:
                fam = GaugeMetricFamily(name, doc, labels=names, unit=unit)
            for values, value in rows:
                fam.add_metric(values, value)
            yield fam


def _mirror(n: int, text: str) -> tuple[Any, Any, list[Any], str]:
    """prometheus_client serving the same families as ``text`` through a custom collector."""
    from prometheus_client import CollectorRegistry

    prom = CollectorRegistry(auto_describe=False)
    prom.register(MirrorCollector(text))
    bare, what = _caches(n)
    return prom, None, bare, what


def _apps(side: str, prom: Any) -> tuple[Callable[..., Any], str, Callable[[], None]]:
    """The side's ``/metrics`` app, and the URL and closer of its HTTP server."""
    if side == "prometheus_client":
        import prometheus_client

        httpd, thread = prometheus_client.start_http_server(0, "127.0.0.1", registry=prom)

        def close() -> None:
            httpd.shutdown()
            httpd.server_close()
            thread.join(5)

        url = f"http://127.0.0.1:{httpd.server_port}/metrics"
        return prometheus_client.make_wsgi_app(prom), url, close
    import memexport

    server = memexport.start_http_server(0, "127.0.0.1", registry=prom, collector=False)
    return compat.metrics_app(prom), server.url, server.close


def _timed(app: Callable[..., Any], accept: str) -> tuple[int, bytes]:
    t0 = time.thread_time_ns()
    body = compat.call_app(app, accept)
    return time.thread_time_ns() - t0, body


def _http(url: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Accept": FORMATS["openmetrics"]})
    t0 = time.process_time_ns()
    with urllib.request.urlopen(req, timeout=120) as res:  # loopback, our server
        body = res.read()
    return time.process_time_ns() - t0, body


def _samples(text: bytes) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))


def run(spec: dict[str, Any]) -> dict[str, Any]:
    side, n, rounds = spec["side"], int(spec["n"]), int(spec["rounds"])
    if side == "memexport":
        prom, reg, keep, what = _memexport(n)
    elif side == "sessions":
        prom, reg, keep, what = _sessions(n)
    else:
        with open(spec["mirror_of"], encoding="utf-8") as f:
            prom, reg, keep, what = _mirror(n, json.load(f)["openmetrics"])
    app, url, close = _apps(side, prom)
    try:
        gc.collect()
        first = _timed(app, "")[0]
        settled = ""
        if reg is not None:  # the steady state: sizes taken, as after a while of collector ticks
            ticks, coverage = compat.settle_sizes(reg)
            settled = f"{ticks} tick-job rounds to coverage {coverage}"
            if _samples(_timed(app, "")[1]) != _samples(_timed(app, "")[1]):
                raise RuntimeError("the exposition still changes after the sizes settled")
        bodies = {fmt: _timed(app, accept)[1].decode() for fmt, accept in FORMATS.items()}
        bodies["http"] = _http(url)[1].decode()
        stable = _timed(app, "")[1].decode() == bodies["text"]
        gc.collect()
        on: dict[str, list[int]] = {fmt: [] for fmt in FORMATS}
        for _ in range(rounds):
            for fmt, accept in FORMATS.items():
                on[fmt].append(_timed(app, accept)[0])
        http = [_http(url)[0] for _ in range(rounds)]
        gc.collect()
        gc.disable()
        try:
            off = [_timed(app, "")[0] for _ in range(rounds)]
        finally:
            gc.enable()
    finally:
        close()
    with open(spec["out"], "w", encoding="utf-8") as f:
        json.dump(bodies, f)
    del keep
    return {"first": first, "gc_on": on["text"], "gc_off": off, "openmetrics": on["openmetrics"],
            "utf8": on["utf8"], "http": http, "what": what, "settled": settled,
            "stable": stable}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    json.dump(run(json.loads(args[0])), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
