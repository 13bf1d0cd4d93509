"""Bench cases for the process collector's readings: the RSS ledger, cgroup forensics and a
whole tick with and without them (CPU time of the collector thread).

Targets (issue 11): the ledger under 2 ms per tick, cgroup forensics under 1 ms, the default
tick under 2 ms.
"""

from __future__ import annotations

from memexport.bench.model import Case, Entry, at_most
from memexport.core.registry import Registry
from memexport.process import cgroup, ledger, reader
from memexport.process.collector import ProcessCollector

__all__ = ["cases"]


def cases(quick: bool) -> list[Entry]:
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

    base = "process: one tick, no ledger, no cgroup (CPU)"
    return [
        Case("process: RSS ledger, one reading per tick (CPU)", read_ledger,
             target=at_most(2e6)),
        Case("process: cgroup forensics, one reading (CPU)", read_cgroup, target=at_most(1e6)),
        Case(base, tick_bare),
        Case("process: one tick, ledger and cgroup on (default) (CPU)", tick_full, base,
             target=at_most(2e6)),
    ]
