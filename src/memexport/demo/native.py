"""Demo part for memory Python cannot see: a native leak and allocator retention.

- ``leak``: every tick a C-level buffer is mapped (``mmap`` through ctypes, outside both
  pymalloc and glibc's heap, as native libraries with their own allocators do), written to
  and never freed: the RSS ledger shows it as ``unattributed`` growth.
- every scenario: a retention cycle. Many small objects (1 KiB: served by glibc, not pymalloc)
  are allocated, one in 32 kept, the rest freed: glibc cannot give back the holes between
  survivors, so ``malloc_free`` (free but retained) rises; every ``TRIM_EVERY`` ticks outside
  ``leak`` the survivors are dropped and ``malloc_trim(0)`` returns the free memory, and
  ``malloc_free`` falls.
"""

from __future__ import annotations

import ctypes
import mmap
from typing import Any

from memexport.demo.app import Part
from memexport.process.allocator import malloc_trim

__all__ = ["NativeLeak", "Retention", "fragment", "malloc_leak", "mmap_leak", "parts"]

#: Bytes of native memory the leak scenario maps per tick (about 3.75 MiB a minute at 1 s).
NATIVE_LEAK_PER_TICK = 64 * 1024
#: Bytes allocated per retention cycle, in objects of ``RETENTION_OBJECT`` bytes.
RETENTION_BYTES = 8 << 20
RETENTION_OBJECT = 1024
KEEP_EVERY = 32
TRIM_EVERY = 30

_libc: Any = None


def _c() -> Any:
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(None)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        _libc = libc
    return _libc


def mmap_leak(nbytes: int) -> int:
    """Map ``nbytes`` of anonymous memory with C's mmap, touch every page, never unmap it."""
    libc = _c()
    addr = libc.mmap(None, nbytes, mmap.PROT_READ | mmap.PROT_WRITE,
                     mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        raise MemoryError(f"mmap of {nbytes} bytes failed")
    ctypes.memset(addr, 1, nbytes)
    return int(addr)


def malloc_leak(nbytes: int) -> int:
    """``malloc(nbytes)`` from C, written to and never freed (a native malloc leak)."""
    addr = _c().malloc(nbytes)
    if not addr:
        raise MemoryError(f"malloc of {nbytes} bytes failed")
    ctypes.memset(addr, 1, nbytes)
    return int(addr)


def fragment(total: int = RETENTION_BYTES, size: int = RETENTION_OBJECT,
             keep_every: int = KEEP_EVERY) -> list[bytearray]:
    """Allocate ``total`` bytes in ``size``-byte objects, return one in ``keep_every``: the
    others are freed when this returns, leaving holes glibc keeps (free but retained)."""
    objs = [bytearray(size) for _ in range(total // size)]
    return objs[::keep_every]


class NativeLeak:
    """A C-level buffer mapped every tick and never freed."""

    def __init__(self) -> None:
        self.leaked = 0

    def step(self, tick: int) -> None:
        mmap_leak(NATIVE_LEAK_PER_TICK)
        self.leaked += NATIVE_LEAK_PER_TICK


class Retention:
    """Fragmenting churn; trimmed every ``TRIM_EVERY`` ticks unless it is the leak scenario."""

    def __init__(self, trim: bool) -> None:
        self.trim = trim
        self.survivors: list[list[bytearray]] = []

    def step(self, tick: int) -> None:
        if tick % 5 == 0:
            self.survivors.append(fragment())
        if self.trim and tick % TRIM_EVERY == TRIM_EVERY - 1:
            self.survivors.clear()
            malloc_trim(0)
        elif not self.trim and len(self.survivors) > 60:
            self.survivors.pop(0)


def parts(scenario: str) -> list[Part]:
    out: list[Part] = [Retention(trim=scenario != "leak")]
    if scenario == "leak":
        out.append(NativeLeak())
    return out
