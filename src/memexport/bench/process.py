"""Bench cases for the process collector's readings: the RSS ledger, cgroup forensics and a
whole tick with and without them (CPU time of the collector thread)."""

from __future__ import annotations

import time

from memexport.bench import Case
from memexport.core.registry import Registry
from memexport.process import cgroup, ledger, reader
from memexport.process.collector import ProcessCollector


def cases(quick: bool) -> list[Case]:
    reg = Registry()
    proc = reader.current()
    bare = ProcessCollector(reg, ledger=False, cgroup=False)
    full = ProcessCollector(Registry())

    def read_ledger(n: int) -> None:
        for _ in range(n):
            ledger.read_ledger(reg, proc)

    def read_cgroup(n: int) -> None:
        for _ in range(n):
            cgroup.read_cgroup()

    def tick_bare(n: int) -> None:
        for _ in range(n):
            bare.tick()

    def tick_full(n: int) -> None:
        for _ in range(n):
            full.tick()

    cpu = time.thread_time_ns
    base = "process: one tick, no ledger, no cgroup (CPU)"
    return [
        Case("process: RSS ledger, one reading per tick (CPU)", read_ledger,
             target="< 2 ms CPU per tick", clock=cpu),
        Case("process: cgroup forensics, one reading (CPU)", read_cgroup,
             target="< 1 ms CPU", clock=cpu),
        Case(base, tick_bare, clock=cpu),
        Case("process: one tick, ledger and cgroup on (default) (CPU)", tick_full, base,
             target="< 2 ms CPU", clock=cpu),
    ]
