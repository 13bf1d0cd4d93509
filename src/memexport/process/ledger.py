"""The RSS ledger: every resident byte in exactly one class, the remainder counted explicitly.

Classes, in the order they are attributed (each takes at most what is left of RSS):

==================  ===========================================================================
``file``            file-backed and shared-memory pages: ``VmRSS - RssAnon`` of
                    ``/proc/self/status`` (code, mapped files, shm); the kernel's figure
``components``      instrumented components, summed per kind (``registry.bytes_by_object``),
                    a component held in an agent's memory store subtracted from the agent
``python_objects``  other live Python objects: pymalloc's allocated blocks, plus, when tracing,
                    tracemalloc's traces over 512 B (Python objects in the C heap); see
                    ``python_small`` for the estimate used while tracemalloc traces
``malloc_used``     glibc in use (``mallinfo2`` ``uordblks + hblkhd``) less the Python part
                    above: native allocations of C extensions, tracemalloc's own tables
``pymalloc_free``   free memory pymalloc keeps in its arenas
``malloc_free``     glibc free but retained and resident (``fordblks``, at most the heaps'
                    resident bytes, by ``mincore``, less the chunks in use)
``unattributed``    the remainder: thread stacks, direct mmaps, other allocators, native leaks
==================  ===========================================================================

Overlaps are removed by construction: components are Python objects, taken out of the Python
pools (pymalloc blocks and traced large objects first, then the C heap, where untraced large
objects live); Python's large objects are taken out of glibc's in-use figure. A source that
cannot be read leaves its class at 0 and its bytes in ``unattributed`` (musl: no mallinfo2).
Sources can over-report resident memory (free chunks already returned with ``MADV_DONTNEED``,
untouched ``calloc`` pages, swapped pages): what exceeds RSS is clipped from the classes last
in the order and exported as ``memexport_memory_ledger_clipped_bytes``, so the classes always
sum to the RSS read (``VmRSS`` of ``/proc/self/status``, or ``smaps_rollup`` ``Rss`` on
kernels before 4.5).
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memexport.core.model import Family
from memexport.core.registry import Registry
from memexport.process import allocator
from memexport.process.allocator import MallocInfo, PymallocInfo
from memexport.process.tracesites import TraceReading

__all__ = ["CLASSES", "Ledger", "LedgerInputs", "build_ledger", "component_bytes", "families",
           "memory_pages", "python_small", "read_ledger"]

#: Names of the metrics this module exports (the shipped dashboards read them).
LEDGER_BYTES = "memexport_memory_ledger_bytes"
LEDGER_COMPONENT_BYTES = "memexport_memory_ledger_component_bytes"
LEDGER_CLIPPED_BYTES = "memexport_memory_ledger_clipped_bytes"

CLASSES = ("file", "components", "python_objects", "malloc_used", "pymalloc_free",
           "malloc_free", "unattributed")
#: Entries of agent stores looked at per tick to find components held in them.
MAX_STORE_ENTRIES = 100_000


@dataclass(frozen=True)
class LedgerInputs:
    """The readings the ledger is built from; ``None`` where a source could not be read."""

    rss: int
    anon: int | None = None
    components: Mapping[str, float] = field(default_factory=dict)
    python_small: int | None = None  # bytes of Python objects in pymalloc blocks
    pymalloc_free: int | None = None  # free bytes in pymalloc's arenas
    python_large: int | None = None  # traced bytes in allocations over 512 B (tracing only)
    malloc: MallocInfo | None = None


@dataclass(frozen=True)
class Ledger:
    """RSS split into ``CLASSES`` (summing to ``rss``), components by kind, and the clip."""

    rss: int
    classes: dict[str, int]
    components: dict[str, int]
    clipped: int
    measured: dict[str, int]  # each class as its source reported it, before clipping


def build_ledger(inp: LedgerInputs) -> Ledger:
    """Attribute ``inp.rss`` to the classes; pure arithmetic, for the collector and tests."""
    rss = max(0, int(inp.rss))
    anon = rss if inp.anon is None else min(rss, max(0, int(inp.anon)))
    comp_kinds = {k: max(0.0, float(v)) for k, v in inp.components.items()}
    comp_total = sum(comp_kinds.values())
    small = inp.python_small or 0
    large = inp.python_large or 0
    py_pool = small + large
    if inp.malloc is not None:
        native_pool: float = max(0, inp.malloc.in_use - large)
    else:
        native_pool = float("inf")  # no glibc figures: components may be anywhere in anon
    comp = min(comp_total, py_pool + native_pool)
    comp_from_py = min(comp, py_pool)
    comp_from_native = comp - comp_from_py
    measured = {
        "file": rss - anon,
        "components": int(comp),
        "python_objects": int(py_pool - comp_from_py),
        "malloc_used": int(native_pool - comp_from_native) if inp.malloc is not None else 0,
        "pymalloc_free": inp.pymalloc_free or 0,
        "malloc_free": inp.malloc.resident_free if inp.malloc is not None else 0,
    }
    classes = {"file": rss - anon}
    left = anon
    for name in CLASSES[1:-1]:
        take = min(measured[name], left)
        classes[name] = take
        left -= take
    classes["unattributed"] = left
    clipped = sum(measured[n] - classes[n] for n in CLASSES[:-1])
    scale = classes["components"] / comp_total if comp_total else 0.0
    by_kind = {k: int(v * scale) for k, v in sorted(comp_kinds.items())}
    return Ledger(rss=rss, classes=classes, components=by_kind, clipped=int(clipped),
                  measured=measured)


def python_small(pym: PymallocInfo | None, traced: TraceReading | None,
                 blocks: int | None) -> tuple[int | None, int | None]:
    """(bytes of Python objects in pymalloc blocks, free bytes in its arenas).

    CPython reports pymalloc's arenas only while tracemalloc is off; while it traces, the
    small objects are its traced small bytes plus the untraced blocks (allocated before
    tracing began: ``sys.getallocatedblocks()`` minus traced small blocks) at the traced mean
    block size, and pymalloc's free memory is unknown (left in ``unattributed``).
    """
    if pym is not None:
        return pym.allocated, pym.free
    if traced is None:
        return None, None
    small_bytes = max(0, traced.traced - traced.large)
    mean = small_bytes / traced.small_blocks if traced.small_blocks else 64.0
    untraced = max(0, (blocks or 0) - traced.small_blocks)
    return int(small_bytes + untraced * mean), None


def memory_pages(reader: Any) -> tuple[int, int, str]:
    """(RSS, anonymous RSS, source) from ``/proc/self/status``, else ``smaps_rollup``.

    ``status`` serves the kernel's RSS counters (``VmRSS`` is ``RssAnon + RssFile +
    RssShmem``, read at once): constant cost, the figure ``process_resident_memory_bytes``
    reads too. ``smaps_rollup`` walks every page table (3 ms of CPU per GiB resident here), so it
    is read only on kernels whose ``status`` has no ``RssAnon`` (before 4.5).
    """
    try:
        status = reader.status()
        return status["VmRSS"], status["RssAnon"], "status"
    except (OSError, KeyError):
        rollup = reader.smaps_rollup()
        return rollup["Rss"], rollup["Anonymous"], "smaps_rollup"


def _entries(comp: Any, obj: Any, limit: int) -> list[Any]:
    """The direct entries of a component's sampled size (the values of an agent's store),
    at most ``limit``: what the ledger checks for components held inside it."""
    spec = comp.profile.size
    if spec is None:
        return []
    for _ in range(3):  # the app may resize the store meanwhile: try again
        try:
            entries = list(itertools.islice(spec.entries(obj), limit))
            return [e[1] for e in entries] if spec.pairs else entries
        except RuntimeError:
            continue
        except Exception:
            return []
    return []


def component_bytes(registry: Registry, deadline: float | None = None
                    ) -> tuple[dict[str, float], float]:
    """Bytes per kind with nested components counted once, and the bytes taken off.

    An agent's deep size includes whatever its memory store holds; a store entry that is
    itself a tracked component (a conversation, a cache) is subtracted from the agent's
    kind. Only direct entries are looked at (values of a dict store, items of a list), at
    most ``MAX_STORE_ENTRIES`` per call and until ``deadline``.
    """
    by_kind: dict[str, float] = {}
    readings = registry.bytes_by_object(kinds_seen=by_kind)
    others: dict[int, float] = {}
    agents: list[tuple[Any, float, Any]] = []
    for kind, obj, value, comp in readings:
        by_kind[kind] += value
        if kind == "agent":
            agents.append((obj, value, comp))
        else:
            others[id(obj)] = value
    nested_total = 0.0
    if agents and others:
        budget = MAX_STORE_ENTRIES
        for obj, value, comp in agents:
            if budget <= 0 or (deadline is not None and time.perf_counter() > deadline):
                break
            members = _entries(comp, obj, budget)
            budget -= len(members)
            nested = min(sum(others.get(id(m), 0.0) for m in members), value)
            nested_total += nested
        by_kind["agent"] = max(0.0, by_kind["agent"] - nested_total)
    return by_kind, nested_total


def read_ledger(registry: Registry, reader: Any, traced: TraceReading | None = None, *,
                components: bool = True, budget_seconds: float = 0.05) -> Ledger:
    """Read every source now and build the ledger (the collector thread's work per tick).

    ``reader`` is a ``process.reader.ProcessReader``; ``traced`` this tick's tracemalloc
    reading, if tracing; ``components=False`` leaves out the component readers (user code).
    """
    rss, anon, _source = memory_pages(reader)
    by_kind: dict[str, float] = {}
    if components:
        by_kind, _nested = component_bytes(registry, time.perf_counter() + budget_seconds)
    pym = allocator.pymalloc()
    glibc = allocator.mallinfo()
    # sys.getallocatedblocks() walks every pymalloc pool: only the estimate while tracing
    # needs it (pymalloc's own figures are there otherwise).
    blocks = sys.getallocatedblocks() if pym is None and traced is not None else None
    small, pym_free = python_small(pym, traced, blocks)
    return build_ledger(LedgerInputs(
        rss=rss, anon=anon, components=by_kind, python_small=small, pymalloc_free=pym_free,
        python_large=traced.large if traced is not None else None, malloc=glibc))


def families(ledger: Ledger) -> list[Family]:
    """The ledger's families: classes, components by kind, the clipped bytes."""
    classes = Family(
        LEDGER_BYTES, "gauge",
        "Resident memory by class; the classes sum to RSS (see docs/ledger.md for sources).",
        "bytes", [({"class": c}, float(ledger.classes[c])) for c in CLASSES])
    kinds = Family(
        LEDGER_COMPONENT_BYTES, "gauge",
        "The ledger's components class by kind (nested components counted once).", "bytes",
        [({"kind": k}, float(v)) for k, v in ledger.components.items()])
    clipped = Family(
        LEDGER_CLIPPED_BYTES, "gauge",
        "Bytes the ledger's sources reported beyond RSS (not resident: trimmed free chunks, "
        "untouched or swapped pages), left out so that the classes sum to RSS.", "bytes",
        [({}, float(ledger.clipped))])
    return [classes, kinds, clipped]
