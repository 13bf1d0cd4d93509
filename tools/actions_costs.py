"""Docs tooling: measure what each action costs, for docs/actions.md's cost table.

    PYTHONPATH=src python tools/actions_costs.py [--objects 500000] [--entries 20000]

Builds a heap like a long-running agent app's (``--objects`` small Python objects held in
histories and caches, tracemalloc tracing one frame as ``start_collector(tracemalloc=True)``
does), then times the webhook's request handling, each evidence section, each shed step
and a memray capture, and prints one line per measurement.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from collections import deque
from typing import Any

import memexport
from memexport.actions import ActionContext, ActionSet, EvidenceStore, evidence, shed, trimmer
from memexport.actions.capture import memray_available
from memexport.actions.payload import Alert
from memexport.core import sizing
from memexport.core.registry import Registry
from memexport.process.reader import rss_bytes

ALERT = Alert("firing", {"alertname": "MemexportProcessMemoryNearLimit"}, {}, "", "", "")


def heap(registry: Registry, objects: int, entries: int) -> list[Any]:
    """Histories of message dicts and caches of responses: ``objects`` objects in all."""
    keep: list[Any] = []
    per_history = 200
    for i in range(objects // (per_history * 3)):
        h = memexport.conversation(deque(), "support", registry=registry)
        for j in range(per_history):
            h.append({"role": "user", "content": f"message {i}.{j}", "tools": [j]})
        keep.append(h)
    cache = memexport.cache({}, "responses", registry=registry)
    for i in range(entries):
        cache[f"prompt-{i}"] = "response " * 50
    keep.append(cache)
    return keep


def webhook_latency(n: int = 300) -> tuple[float, float]:
    """Median and p99 milliseconds of one matched webhook request (admission only: the
    action is in its cooldown after the first run)."""
    actions = ActionSet()
    memexport.action(lambda ctx: None, name="noop", alerts="A", cooldown=3600,
                     actions=actions)
    svc = memexport.start_actions(port=0, bearer_token="t", action_set=actions,
                                  registry=Registry())
    port = svc.url.rsplit(":", 1)[1].split("/")[0]
    body = json.dumps({"version": "4", "status": "firing", "receiver": "r", "groupKey": "g",
                       "alerts": [{"status": "firing", "labels": {
                           "alertname": "A", "instance": f"127.0.0.1:{port}"}}]}).encode()
    times = []
    for _ in range(n):
        req = urllib.request.Request(svc.url + "/webhook", data=body, headers={
            "Content-Type": "application/json", "Authorization": "Bearer t"})
        t0 = time.perf_counter()
        with urllib.request.urlopen(req) as resp:
            resp.read()
        times.append((time.perf_counter() - t0) * 1000)
    svc.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--objects", type=int, default=500_000)
    p.add_argument("--entries", type=int, default=20_000)
    p.add_argument("--memray-seconds", type=float, default=2.0)
    args = p.parse_args(argv)
    out = sys.stdout
    med, p99 = webhook_latency()
    out.write(f"webhook request (matched, in cooldown): median {med:.2f} ms, p99 {p99:.2f} ms\n")

    tracemalloc.start(1)
    registry = Registry()
    t0 = time.perf_counter()
    keep = heap(registry, args.objects, args.entries)
    out.write(f"heap: {len(gc.get_objects()):,} gc-tracked objects, "
              f"{tracemalloc.get_traced_memory()[0] / 2**20:.0f} MiB traced, RSS "
              f"{(rss_bytes() or 0) / 2**20:.0f} MiB (built in {time.perf_counter() - t0:.1f} s)\n")
    directory = tempfile.mkdtemp(prefix="memexport-costs-")
    store = EvidenceStore(directory)
    act = evidence(alerts="*", referrers=True, timeout=300)
    t0 = time.perf_counter()
    act.fn.prime()
    prime = time.perf_counter() - t0
    baseline = sizing.deep_size(act.fn.state.baseline)
    out.write(f"evidence baseline (tracemalloc sites): {prime:.3f} s, "
              f"{len(act.fn.state.baseline or {}):,} sites kept, {baseline / 1024:.0f} KiB\n")
    keep.append([{"grown": i} for i in range(50_000)])
    ctx = ActionContext(act.name, "firing", (ALERT,), 300, registry=registry, store=store)
    t0 = time.perf_counter()
    act(ctx)
    total = time.perf_counter() - t0
    for name, seconds in ctx.result["seconds"].items():
        out.write(f"evidence section {name}: {seconds:.3f} s\n")
    report = json.loads(open(os.path.join(directory, ctx.result["file"])).read())
    traces = report["sections"]["tracemalloc"]["traces"]
    out.write(f"  tracemalloc: {traces:,} traces, "
              f"{ctx.result['seconds']['tracemalloc'] / traces * 1e6:.2f} us per trace\n")
    out.write(f"evidence capture: {total:.3f} s in all, "
              f"file {ctx.result['bytes'] / 1024:.0f} KiB\n")
    if memray_available():
        mem = evidence(alerts="*", sections=(), memray_seconds=args.memray_seconds,
                       timeout=args.memray_seconds + 30)
        stop = threading.Event()
        counts = [0, 0]

        def churn(slot: int) -> None:
            while not stop.is_set():
                _ = [{"k": i} for i in range(1000)]
                counts[slot] += 1

        worker = threading.Thread(target=churn, args=(0,))
        worker.start()
        time.sleep(args.memray_seconds)
        base = counts[0]
        ctx = ActionContext(mem.name, "firing", (ALERT,), args.memray_seconds + 30,
                            registry=registry, store=store)
        t0 = time.perf_counter()
        mem(ctx)
        during = counts[0] - base
        spent = time.perf_counter() - t0
        stop.set()
        worker.join()
        size = os.path.getsize(os.path.join(directory, ctx.result["memray_file"]))
        out.write(f"memray capture {args.memray_seconds:.0f} s: allocation-heavy thread at "
                  f"{during / max(base, 1):.0%} of its speed, file {size / 2**20:.1f} MiB, "
                  f"{spent:.2f} s\n")

    @trimmer("support")
    def halve(history: Any, fraction: float) -> None:
        for _ in range(int(len(history) * fraction)):
            history.popleft()

    t0 = time.perf_counter()
    while registry.sizer.coverage() is None or (registry.sizer.coverage() or 0) < 1.0:
        registry.run_tick_jobs(budget_seconds=1.0)  # what the collector thread does
        if time.perf_counter() - t0 > 120:
            break
    out.write(f"sizes sampled first, as the collector does: {time.perf_counter() - t0:.1f} s\n")
    cleaned: list[int] = []
    ballast = [bytearray(1 << 20) for _ in range(64)]
    job = memexport.cleanup(ballast.clear, "ballast", registry=registry)
    act = shed(alerts="*", caches={"responses": 0.5}, timeout=300)
    ctx = ActionContext(act.name, "firing", (ALERT,), 300, registry=registry, store=store)
    rss0 = rss_bytes() or 0
    t0 = time.perf_counter()
    act(ctx)
    total = time.perf_counter() - t0
    rss1 = rss_bytes() or 0
    for step, res in ctx.result.items():
        detail = {k: v for k, v in res.items() if k not in ("seconds", "rss_freed_bytes")}
        out.write(f"shed step {step}: {res['seconds']:.3f} s, RSS freed "
                  f"{res['rss_freed_bytes'] / 2**20:.1f} MiB, {detail}\n")
    out.write(f"shed: {total:.3f} s in all, RSS {rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} MiB\n")
    del keep, job, cleaned
    tracemalloc.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
