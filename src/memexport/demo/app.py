"""The demo's engine: a simulated long-running agent app, served on ``/metrics``.

Parts (caches, pools, agents, ...) come from the sibling modules, each exposing
``parts(scenario) -> list[Part]``; every tick calls ``step`` on each part. The demo uses
memexport's public API only, as a user's app would.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Protocol, TextIO

import memexport

__all__ = ["ACCELERATED", "PART_MODULES", "SCENARIOS", "Part", "run"]

#: Sibling modules that contribute parts; missing ones are skipped.
PART_MODULES = ("core", "caches", "pools", "agents", "native")
SCENARIOS = {
    "healthy": "steady load: caches at capacity, pools returning resources, sessions ending",
    "leak": "a component and RSS grow steadily: unbounded cache, leaked resource, "
            "agents kept alive, histories growing",
    "exhaust": "steady load, but one pool is too small and its acquires time out",
}


#: Set by ``run(leak_rate=...)`` before the parts load: bytes a second the ``leak`` scenario
#: retains in its unbounded memo cache (an instrumented component), instead of the anonymous
#: ballast, so that alerts can name the component at fault within minutes.
ACCELERATED: dict[str, float] = {}


class Part(Protocol):
    """One simulated piece of the app; ``step`` is called once per tick."""

    def step(self, tick: int) -> None: ...


def load_parts(scenario: str) -> list[Part]:
    parts: list[Part] = []
    for mod_name in PART_MODULES:
        try:
            mod = importlib.import_module(f"memexport.demo.{mod_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"memexport.demo.{mod_name}":
                continue
            raise
        parts.extend(mod.parts(scenario))
    return parts


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB" if n < 2**30 else f"{n / 2**30:,.2f} GiB"


def status_line(collector: object, server: memexport.MetricsServer, scenario: str,
                started: float) -> str:
    latest = getattr(collector, "latest", None)
    rss = getattr(latest, "rss_bytes", None)
    limit = getattr(latest, "limit_bytes", None)
    source = getattr(latest, "limit_source", None)
    up = int(time.monotonic() - started)
    mem = "rss ?"
    if rss is not None:
        mem = f"rss {_mib(rss)}"
        if limit:
            mem += f" / limit {_mib(limit)} ({source}, {rss / limit:.1%})"
    return (f"memexport demo [{scenario}] up {up // 3600:02d}:{up // 60 % 60:02d}:{up % 60:02d} "
            f"| {mem} | components {memexport.REGISTRY.live_components()} "
            f"| scrapes {server.collector.scrapes} | {server.url}")


def run(*, port: int, addr: str, duration: float | None, scenario: str, tick: float,
        collector_interval: float, out: TextIO = sys.stdout,
        leak_rate: float | None = None, actions_token: str | None = None,
        evidence_dir: str | None = None, actions_cooldown: float = 600.0) -> int:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}: use one of {sorted(SCENARIOS)}")
    ACCELERATED.clear()
    if leak_rate is not None:
        ACCELERATED["bytes_per_second"] = leak_rate * 2**20
    server = memexport.start_http_server(port, addr, collector=False)
    # Parts first: their imports (LangGraph, SQLAlchemy) are not the app's allocations.
    parts = load_parts(scenario)
    # The demo shows everything, opt-in probes included (USS and tracemalloc cost CPU).
    collector = memexport.start_collector(collector_interval, uss=True, tracemalloc=True)
    from memexport.demo.actions import setup as setup_actions

    receiver, stop_actions = setup_actions(server, token=actions_token,
                                           evidence_dir=evidence_dir, cooldown=actions_cooldown)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    deadline = None if duration is None else started + duration
    tty = out.isatty()
    out.write(f"memexport demo: scenario {scenario!r} ({SCENARIOS[scenario]}); "
              f"serving {server.url}; Ctrl-C to stop\n")
    out.write(f"memexport demo: Alertmanager webhook {receiver.url}/webhook, evidence in "
              f"{receiver.store.directory if receiver.store else '-'}\n")
    out.flush()
    n = 0
    last_print = 0.0
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            for part in parts:
                part.step(n)
            n += 1
            now = time.monotonic()
            if tty or now - last_print >= 10:
                line = status_line(collector, server, scenario, started)
                out.write(f"\r{line}\x1b[K" if tty else line + "\n")
                out.flush()
                last_print = now
            stop.wait(tick)
    except KeyboardInterrupt:
        pass
    finally:
        if tty:
            out.write("\n")
        out.write(status_line(collector, server, scenario, started) + "\n")
        out.write("memexport demo: stopped\n")
        out.flush()
        stop_actions()
        server.close()
        memexport.stop_collector()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="memexport demo",
                                description="Run a simulated multi-agent app exporting metrics.")
    p.add_argument("--port", type=int, default=9464)
    p.add_argument("--addr", default="127.0.0.1")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default="healthy",
                   help="; ".join(f"{k}: {v}" for k, v in SCENARIOS.items()))
    p.add_argument("--tick", type=float, default=1.0, metavar="SECONDS",
                   help="seconds between simulated work steps (default 1)")
    p.add_argument("--collector-interval", type=float, default=5.0, metavar="SECONDS",
                   help="seconds between process-collector readings (default 5)")
    p.add_argument("--leak-rate", type=float, default=None, metavar="MIB_PER_S",
                   help="leak scenario: retain this many MiB a second in the unbounded memo "
                        "cache (an accelerated leak, for alert demos)")
    p.add_argument("--actions-token", default=None, metavar="TOKEN",
                   help="bearer token Alertmanager's webhook must send to "
                        "/actions/webhook (default: MEMEXPORT_ACTIONS_TOKEN, else none)")
    p.add_argument("--evidence-dir", default=None, metavar="DIR",
                   help="where evidence is written (default: a temporary directory)")
    p.add_argument("--actions-cooldown", type=float, default=600.0, metavar="SECONDS",
                   help="seconds between two runs of an action (default 600)")
    args = p.parse_args(argv)
    if args.leak_rate is not None and args.leak_rate <= 0:
        p.error(f"--leak-rate must be positive, got {args.leak_rate!r}")
    if args.duration is not None and args.duration <= 0:
        p.error(f"--duration must be positive, got {args.duration!r}")
    if args.tick <= 0:
        p.error(f"--tick must be positive, got {args.tick!r}")
    try:
        return run(port=args.port, addr=args.addr, duration=args.duration,
                   scenario=args.scenario, tick=args.tick,
                   collector_interval=args.collector_interval, leak_rate=args.leak_rate,
                   actions_token=args.actions_token, evidence_dir=args.evidence_dir,
                   actions_cooldown=args.actions_cooldown)
    except OSError as exc:
        print(f"memexport demo: {exc}", file=sys.stderr)
        return 2
