"""The RSS ledger: classes that sum to RSS, each leak in its class, retention that trims.

The scenarios run in fresh subprocesses (a clean heap each), on the real allocators, kernel
and /proc of this machine; the arithmetic is checked on made-up inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from memexport.core.registry import Registry
from memexport.process import allocator, reader
from memexport.process.allocator import MallocInfo, PymallocInfo, heap_ranges, parse_pymalloc
from memexport.process.collector import ProcessCollector
from memexport.process.ledger import (
    CLASSES,
    LedgerInputs,
    build_ledger,
    component_bytes,
    memory_pages,
)
from memexport.process.reader import ProcessReader

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
#: The ledger sums to the RSS it read exactly; against RSS read separately (psutil, a moment
#: later) the documented tolerance is 2 % or 2 MiB, whichever is larger (docs/ledger.md).
TOLERANCE = 0.02


def run(code: str, timeout: float = 120) -> Any:
    """Run ``code`` in a fresh interpreter (memexport importable); return its JSON output."""
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=timeout, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


PRELUDE = """
    import json
    from memexport.core.registry import Registry
    from memexport.process.collector import ProcessCollector
    from memexport.demo.native import fragment, malloc_leak, mmap_leak
    from memexport.process.allocator import malloc_trim
    c = ProcessCollector(Registry(), cgroup=False, tracemalloc={tracing})
    out = {{}}
    def led(step):
        r = c.tick()
        out[step] = dict(r.ledger.classes, rss=r.ledger.rss, clipped=r.ledger.clipped,
                         psutil_rss=r.rss_bytes)
"""


def scenario(body: str, tracing: bool = False) -> dict[str, dict[str, int]]:
    code = (textwrap.dedent(PRELUDE.format(tracing=tracing)) + textwrap.dedent(body)
            + "\nprint(json.dumps(out))\n")
    return run(code)  # type: ignore[no-any-return]


def sums_to_rss(step: dict[str, int]) -> None:
    assert sum(step[c] for c in CLASSES) == step["rss"]
    assert all(step[c] >= 0 for c in CLASSES)
    assert abs(step["rss"] - step["psutil_rss"]) <= max(TOLERANCE * step["rss"], 2 * MiB)


def grew(after: dict[str, int], before: dict[str, int], cls: str) -> int:
    return after[cls] - before[cls]


@pytest.mark.parametrize("tracing", [False, True], ids=["estimate", "tracemalloc"])
def test_each_leak_lands_in_its_class(tracing: bool) -> None:
    s = scenario("""
        led("base")
        mmap_leak(48 << 20)
        led("native_mmap")
        malloc_leak(48 << 20)
        led("native_malloc")
        held = [str(i) * 20 for i in range(400_000)]  # ~48 MiB of small str objects
        led("python")
    """, tracing)
    for step in s.values():
        sums_to_rss(step)
    base, native, malloc, python = s["base"], s["native_mmap"], s["native_malloc"], s["python"]
    # A C-level buffer outside both allocators: unattributed growth, nothing else moves much.
    assert grew(native, base, "unattributed") >= 44 * MiB
    assert abs(grew(native, base, "python_objects")) < 4 * MiB
    # A native malloc leak: glibc's in-use memory not known as Python objects.
    assert grew(malloc, native, "malloc_used") >= 44 * MiB
    assert abs(grew(malloc, native, "unattributed")) < 4 * MiB
    # A Python leak: Python objects.
    assert grew(python, malloc, "python_objects") >= 40 * MiB
    assert abs(grew(python, malloc, "unattributed")) < 6 * MiB


def test_retention_shows_as_malloc_free_and_falls_after_malloc_trim() -> None:
    s = scenario("""
        led("base")
        keep = fragment(96 << 20)  # 1 KiB objects, one in 32 kept: holes glibc keeps
        led("fragmented")
        malloc_trim(0)
        led("trimmed")
    """)
    for step in s.values():
        sums_to_rss(step)
    base, frag, trimmed = s["base"], s["fragmented"], s["trimmed"]
    assert grew(frag, base, "malloc_free") >= 80 * MiB
    assert frag["malloc_free"] - trimmed["malloc_free"] >= 80 * MiB
    assert frag["rss"] - trimmed["rss"] >= 70 * MiB
    assert trimmed["clipped"] < 4 * MiB  # the trimmed chunks are not counted as resident
    assert abs(grew(trimmed, base, "unattributed")) < 4 * MiB


def test_components_are_counted_once_when_held_in_an_agent_store() -> None:
    import memexport

    reg = Registry()
    store: dict[str, Any] = {}

    class Agent:
        def __init__(self) -> None:
            self._memory_store = store

        def store_memory(self, k: str, v: Any) -> None:
            self._memory_store[k] = v

        def search(self, q: str) -> None: ...

    agent = memexport.agent(Agent(), name="planner", registry=reg)
    cache = memexport.cache({f"k{i}": f"{i:04d}" * 250 for i in range(200)}, name="inner",
                            registry=reg)
    store["cache"] = cache
    store["note"] = "y" * 5000
    reg.collect()
    reg.run_tick_jobs(5.0)
    reg.collect()
    raw = reg.bytes_by_kind()
    deduped, nested = component_bytes(reg)
    assert raw["cache"] > 200_000 and raw["agent"] > raw["cache"]
    assert nested == pytest.approx(raw["cache"])
    assert deduped["agent"] == pytest.approx(raw["agent"] - raw["cache"])
    assert deduped["cache"] == raw["cache"]
    assert sum(deduped.values()) < sum(raw.values())
    del agent


def test_the_collector_ledger_sums_to_rss_and_has_every_class() -> None:
    reg = Registry()
    reading = ProcessCollector(reg, cgroup=False).tick()
    book = reading.ledger
    assert book is not None
    assert set(book.classes) == set(CLASSES)
    assert sum(book.classes.values()) == book.rss
    assert book.classes["file"] > 0 and book.classes["python_objects"] > 0
    if allocator.mallinfo() is not None:  # glibc >= 2.33 (Debian 12 has 2.36)
        assert book.classes["malloc_used"] > 0
    assert reg.errors.counts()["ledger"] == 0


# -- arithmetic on made-up readings -------------------------------------------------------


def test_classes_sum_to_rss_and_overlaps_are_removed() -> None:
    book = build_ledger(LedgerInputs(
        rss=1000, anon=800, components={"cache": 100, "agent": 50}, python_small=300,
        pymalloc_free=40, python_large=200,
        malloc=MallocInfo(in_use=350, free=60, mmapped=0, arena=410)))
    assert book.classes == {"file": 200, "components": 150, "python_objects": 350,
                            "malloc_used": 150, "pymalloc_free": 40, "malloc_free": 60,
                            "unattributed": 50}
    assert book.components == {"agent": 50, "cache": 100}
    assert book.clipped == 0


def test_over_reporting_sources_are_clipped_last_first_and_never_negative() -> None:
    book = build_ledger(LedgerInputs(
        rss=500, anon=400, components={"cache": 100}, python_small=250, pymalloc_free=100,
        malloc=MallocInfo(in_use=100, free=300, mmapped=0, arena=400)))
    assert sum(book.classes.values()) == 500
    assert book.classes["unattributed"] == 0
    # anon 400 in order: components 100, other Python 150, malloc_used 100, pymalloc_free 50
    assert book.classes["malloc_used"] == 100
    assert book.classes["pymalloc_free"] == 50 and book.classes["malloc_free"] == 0
    assert book.clipped == 50 + 300
    assert all(v >= 0 for v in book.classes.values())


def test_components_beyond_python_memory_are_capped_and_scaled_per_kind() -> None:
    book = build_ledger(LedgerInputs(
        rss=1000, anon=1000, components={"cache": 300, "conversation": 100}, python_small=100,
        malloc=MallocInfo(in_use=100, free=0, mmapped=0, arena=100)))
    assert book.classes["components"] == 200
    assert book.components == {"cache": 150, "conversation": 50}
    assert book.classes["python_objects"] == 0 and book.classes["malloc_used"] == 0


def test_without_glibc_or_pymalloc_the_bytes_stay_unattributed() -> None:
    book = build_ledger(LedgerInputs(rss=1000, anon=900))
    assert book.classes["unattributed"] == 900 and book.classes["file"] == 100
    assert sum(book.classes.values()) == 1000


def test_resident_free_is_bounded_by_the_heaps_resident_pages() -> None:
    m = MallocInfo(in_use=100, free=500, mmapped=20, arena=580, heap_resident=200)
    assert m.resident_free == 120  # 200 resident - 80 in use in the heaps
    assert MallocInfo(1, 5, 0, 6).resident_free == 5  # residency unknown: glibc's figure


def test_pymalloc_text_is_parsed() -> None:
    text = ("# arenas allocated current           =                    5\n"
            "# bytes in allocated blocks        =            3,956,288\n"
            "5 arenas * 1048576 bytes/arena     =            5,242,880\n")
    assert parse_pymalloc(text) == PymallocInfo(allocated=3956288, arenas=5242880,
                                                free=5242880 - 3956288)
    assert parse_pymalloc("nothing") is None


def test_heap_ranges_find_the_main_and_thread_heaps() -> None:
    maps = "\n".join([
        "55d0c0000000-55d0c0100000 rw-p 00000000 00:00 0                          [heap]",
        "7f0000000000-7f0000400000 rw-p 00000000 00:00 0 ",
        "7f0000400000-7f0004000000 ---p 00000000 00:00 0 ",
        "7f0010000000-7f0010100000 rw-p 00000000 00:00 0 ",  # aligned but no reserve: not
        "7f0010200000-7f0010300000 rw-p 00000000 08:01 42   /usr/lib/libx.so",
    ])
    assert heap_ranges(maps) == [(0x55D0C0000000, 0x55D0C0100000),
                                 (0x7F0000000000, 0x7F0000400000)]


# -- sources read cheaply on every tick ----------------------------------------------------


def _proc_tree(root: Path, status: str, rollup: str | None) -> ProcessReader:
    d = root / str(os.getpid())
    d.mkdir(parents=True, exist_ok=True)
    (d / "status").write_text(status)
    if rollup is not None:
        (d / "smaps_rollup").write_text(rollup)
    return ProcessReader(proc_root=str(root))


def test_rss_and_anonymous_pages_come_from_status_and_rollup_only_without_rss_anon(
        tmp_path: Path) -> None:
    rollup = "Rss:                 900 kB\nAnonymous:           700 kB\n"
    full = _proc_tree(tmp_path / "new", "VmRSS:\t    1000 kB\nRssAnon:\t     600 kB\n"
                      "RssFile:\t     300 kB\nRssShmem:\t     100 kB\n", rollup)
    assert memory_pages(full) == (1000 * 1024, 600 * 1024, "status")
    old = _proc_tree(tmp_path / "old", "VmRSS:\t    1000 kB\n", rollup)  # kernel < 4.5
    assert memory_pages(old) == (900 * 1024, 700 * 1024, "smaps_rollup")


def test_the_live_status_and_rollup_agree_on_rss_and_anonymous_pages() -> None:
    status, rollup = reader.proc_status(), reader.smaps_rollup()
    assert status is not None and rollup is not None
    for mine, kernel in ((status["VmRSS"], rollup["Rss"]),
                         (status["RssAnon"], rollup["Anonymous"])):
        assert abs(mine - kernel) <= max(TOLERANCE * kernel, 2 * MiB)


def test_heap_ranges_are_reused_while_the_heaps_keep_their_bytes(tmp_path: Path) -> None:
    assert allocator.heap_resident() is not None  # glibc's mincore (Debian)
    maps = tmp_path / "maps"
    maps.write_text(Path("/proc/self/maps").read_text())
    first = allocator.heap_resident(str(maps), arena=1)
    assert first is not None and first > 0
    maps.write_text("")  # no heaps: seen only when maps is read again
    for _ in range(allocator.HEAP_RANGES_REUSE - 1):
        assert (allocator.heap_resident(str(maps), arena=1) or 0) > 0
    assert allocator.heap_resident(str(maps), arena=1) == 0  # reused N times: read again
    maps.write_text(Path("/proc/self/maps").read_text())
    assert (allocator.heap_resident(str(maps), arena=1) or 0) == 0  # still reused
    assert (allocator.heap_resident(str(maps), arena=2) or 0) > 0  # heaps changed: read


def test_a_heap_gone_since_the_last_parse_makes_maps_read_again(tmp_path: Path) -> None:
    assert allocator.heap_resident() is not None  # glibc's mincore (Debian)
    maps = tmp_path / "maps"
    # Below mmap_min_addr: never mapped, so mincore fails on it.
    maps.write_text("00001000-00002000 rw-p 00000000 00:00 0                          [heap]\n")
    with pytest.raises(OSError):
        allocator.heap_resident(str(maps), arena=7)
    maps.write_text("")
    assert allocator.heap_resident(str(maps), arena=7) == 0
