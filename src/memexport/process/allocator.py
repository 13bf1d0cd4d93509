"""What the allocators hold: glibc's ``mallinfo2()`` and pymalloc's arena statistics.

Both are read through ctypes on the collector thread, and each answers ``None`` where it does
not apply (musl or glibc < 2.33 have no ``mallinfo2``; PyPy or a ``--without-pymalloc`` build
has no pymalloc statistics), so the ledger counts that memory elsewhere.

- ``mallinfo()``: glibc in use (``uordblks`` + ``hblkhd``: chunks handed out, mmapped ones
  included) and free but retained (``fordblks``: free chunks kept in the arenas). Free chunks
  may have been returned to the OS page by page (``malloc_trim`` does so with
  ``MADV_DONTNEED``) while glibc still counts them: the ledger clips what exceeds RSS.
- ``pymalloc()``: CPython's small-object allocator, from ``_PyObject_DebugMallocStats``
  written to an in-memory stream (``open_memstream``), never to the app's stderr: bytes in
  allocated blocks, and the rest of its arenas (free blocks, free pools, headers, padding).
- ``malloc_trim()``: give free glibc memory back to the OS now; the fix for retention.
"""

from __future__ import annotations

import ctypes
import re
import threading
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MallocInfo",
    "PymallocInfo",
    "glibc_version",
    "heap_ranges",
    "heap_resident",
    "mallinfo",
    "malloc_trim",
    "pymalloc",
]


@dataclass(frozen=True)
class MallocInfo:
    """glibc heap figures in bytes (``mallinfo2()``)."""

    in_use: int  # uordblks + hblkhd
    free: int  # fordblks
    mmapped: int  # hblkhd: chunks served by mmap (counted in in_use)
    arena: int  # bytes of the sbrk/mmap heaps (in use + free, mmapped chunks excluded)
    heap_resident: int | None = None  # resident bytes of those heaps (mincore), if known

    @property
    def resident_free(self) -> int:
        """Free bytes still resident: free chunks whose pages went back to the OS
        (``malloc_trim``) are not, though glibc counts them free."""
        if self.heap_resident is None:
            return self.free
        return max(0, min(self.free, self.heap_resident - (self.in_use - self.mmapped)))


@dataclass(frozen=True)
class PymallocInfo:
    """pymalloc figures in bytes (``_PyObject_DebugMallocStats``)."""

    allocated: int  # bytes in allocated blocks (rounded up to the block size)
    arenas: int  # bytes of all arenas currently allocated
    free: int  # arenas - allocated: free blocks, free pools, pool headers, alignment

    @property
    def arenas_count(self) -> int:
        return self.arenas // (1 << 20) if self.arenas else 0


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


_lock = threading.Lock()
_libc: Any = None
_libc_loaded = False


def _load() -> Any:
    """The C library (the process's own symbols), or None; resolved once."""
    global _libc, _libc_loaded
    if not _libc_loaded:
        with _lock:
            if not _libc_loaded:
                try:
                    libc = ctypes.CDLL(None)
                except OSError:  # pragma: no cover - no dynamic loader
                    libc = None
                _libc = libc
                _libc_loaded = True
    return _libc


def glibc_version() -> tuple[int, int] | None:
    """(major, minor) of the running glibc, None on another C library."""
    libc = _load()
    fn = getattr(libc, "gnu_get_libc_version", None) if libc is not None else None
    if fn is None:
        return None
    fn.restype = ctypes.c_char_p
    m = re.match(rb"(\d+)\.(\d+)", fn() or b"")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _mallinfo2() -> Any:
    version = glibc_version()
    if version is None or version < (2, 33):
        return None
    fn = getattr(_load(), "mallinfo2", None)
    if fn is not None:
        fn.restype = _Mallinfo2
        fn.argtypes = []
    return fn


def mallinfo(maps_path: str | None = "/proc/self/maps") -> MallocInfo | None:
    """glibc's heap figures now, or None without glibc >= 2.33 (musl: counted elsewhere).

    With ``maps_path``, the heaps' resident bytes are measured too (``heap_resident``).
    """
    fn = _mallinfo2()
    if fn is None:
        return None
    m = fn()
    resident = None
    if maps_path is not None:
        try:
            resident = heap_resident(maps_path, arena=int(m.arena))
        except OSError:
            resident = None
    return MallocInfo(in_use=int(m.uordblks) + int(m.hblkhd), free=int(m.fordblks),
                      mmapped=int(m.hblkhd), arena=int(m.arena), heap_resident=resident)


#: glibc's HEAP_MAX_SIZE on 64-bit: thread arenas are heaps of this size, aligned to it.
_HEAP_MAX = 64 << 20 if ctypes.sizeof(ctypes.c_void_p) == 8 else 1 << 20


def heap_ranges(maps_text: str) -> list[tuple[int, int]]:
    """(start, end) of glibc's heaps in ``/proc/self/maps``: ``[heap]`` (the main arena) and
    the read-write part of thread arenas (anonymous, starting on a ``HEAP_MAX_SIZE``
    boundary, followed by their unused ``---p`` reserve or exactly that size)."""
    # Only anonymous rows (no device, inode 0) are kept: a reserve must start where its heap
    # ends, so rows left out between two kept ones never hide an adjacent pair.
    rows: list[tuple[int, int, str, str]] = []
    for line in maps_text.splitlines():
        if " 00:00 0" not in line:  # cheap test first: most rows are files
            continue
        parts = line.split(maxsplit=5)
        if len(parts) < 5 or parts[3] != "00:00" or parts[4] != "0":
            continue
        start, _, end = parts[0].partition("-")
        rows.append((int(start, 16), int(end, 16), parts[1], parts[5].strip() if len(parts) > 5
                     else ""))
    out: list[tuple[int, int]] = []
    for i, (lo, hi, perms, path) in enumerate(rows):
        if path == "[heap]":
            out.append((lo, hi))
        elif (not path and perms == "rw-p" and lo % _HEAP_MAX == 0 and hi - lo <= _HEAP_MAX):
            nxt = rows[i + 1] if i + 1 < len(rows) else None
            reserve = (nxt is not None and nxt[0] == hi and nxt[2] == "---p" and not nxt[3]
                       and nxt[1] <= lo + _HEAP_MAX)
            if reserve or hi - lo == _HEAP_MAX:
                out.append((lo, hi))
    return out


def _resident(lo: int, hi: int) -> int:
    libc = _load()
    page = _page_size()
    n = (hi - lo + page - 1) // page
    vec = (ctypes.c_ubyte * n)()
    if libc.mincore(ctypes.c_void_p(lo), ctypes.c_size_t(hi - lo), vec) != 0:
        raise OSError(ctypes.get_errno(), "mincore failed")
    return (n - bytes(vec).count(0)) * page


def _page_size() -> int:
    import mmap

    return mmap.PAGESIZE


#: Readings that reuse the heaps' ranges while glibc's heap bytes stay the same.
HEAP_RANGES_REUSE = 10
#: (maps path, glibc's ``arena`` bytes, readings served, ranges): the last parse of maps.
_ranges_cache: tuple[str, int, int, list[tuple[int, int]]] | None = None


def _heap_ranges_of(maps_path: str, arena: int | None, fresh: bool
                    ) -> list[tuple[int, int]]:
    """The heaps' ranges: parsed from ``maps_path`` again unless the last parse has the same
    ``arena`` bytes (glibc's heaps neither grew nor shrank) and served fewer than
    ``HEAP_RANGES_REUSE`` readings. The kernel writes maps at a cost that grows with the
    number of mappings; the heaps change far less often than they are read."""
    global _ranges_cache
    cached = _ranges_cache
    if (not fresh and arena is not None and cached is not None and cached[0] == maps_path
            and cached[1] == arena and cached[2] < HEAP_RANGES_REUSE):
        _ranges_cache = (maps_path, arena, cached[2] + 1, cached[3])
        return cached[3]
    with open(maps_path) as f:
        ranges = heap_ranges(f.read())
    _ranges_cache = None if arena is None else (maps_path, arena, 1, ranges)
    return ranges


def heap_resident(maps_path: str = "/proc/self/maps", arena: int | None = None) -> int | None:
    """Resident bytes of glibc's heaps (``mincore`` over ``heap_ranges``), None without glibc.

    ``arena`` (``mallinfo2().arena``, the heaps' bytes) lets the ranges of the last reading be
    reused while it stays the same, for at most ``HEAP_RANGES_REUSE`` readings; a range gone
    meanwhile (``mincore`` fails) makes it read maps again at once.
    """
    libc = _load()
    if libc is None or getattr(libc, "mincore", None) is None:
        return None
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.mincore.restype = ctypes.c_int
    ranges = _heap_ranges_of(maps_path, arena, fresh=False)
    try:
        return sum(_resident(lo, hi) for lo, hi in ranges)
    except OSError:
        ranges = _heap_ranges_of(maps_path, arena, fresh=True)
        return sum(_resident(lo, hi) for lo, hi in ranges)


def malloc_trim(pad: int = 0) -> bool:
    """Return free glibc heap memory to the OS (``malloc_trim(pad)``); True if any was.

    Costs a walk of every arena (milliseconds for a large heap) and takes each arena's lock:
    call it from a quiet moment, not a hot path. False without glibc.
    """
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"pad must be a non-negative int of bytes, got {pad!r}")
    libc = _load()
    fn = getattr(libc, "malloc_trim", None) if libc is not None else None
    if fn is None or glibc_version() is None:
        return False
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_size_t]
    return bool(fn(pad))


_FIELD = re.compile(r"^#?\s*(bytes in allocated blocks|arenas allocated current)\s*=\s*([\d,]+)",
                    re.M)
_TOTAL = re.compile(r"^(\d[\d,]*) arenas \* (\d[\d,]*) bytes/arena", re.M)


def _stats_text() -> str | None:
    libc = _load()
    fn = getattr(ctypes.pythonapi, "_PyObject_DebugMallocStats", None)
    memstream = getattr(libc, "open_memstream", None) if libc is not None else None
    if fn is None or memstream is None:
        return None
    fn.argtypes = [ctypes.c_void_p]
    fn.restype = ctypes.c_int
    memstream.restype = ctypes.c_void_p
    memstream.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t)]
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.free.argtypes = [ctypes.c_void_p]
    buf = ctypes.c_char_p()
    size = ctypes.c_size_t()
    stream = memstream(ctypes.byref(buf), ctypes.byref(size))
    if not stream:
        raise OSError("open_memstream failed")
    try:
        wrote = fn(stream)  # ctypes.pythonapi keeps the GIL held: pymalloc needs it
    finally:
        libc.fclose(stream)  # flushes: buf and size are valid after this
        text = ctypes.string_at(buf, size.value).decode("ascii", "replace") if buf else ""
        libc.free(ctypes.cast(buf, ctypes.c_void_p))
    return text if wrote else None


def parse_pymalloc(text: str) -> PymallocInfo | None:
    """Figures from the text of ``sys._debugmallocstats()``; None if it has none."""
    fields = {k: int(v.replace(",", "")) for k, v in _FIELD.findall(text)}
    total = _TOTAL.search(text)
    if "bytes in allocated blocks" not in fields or total is None:
        return None
    arenas = int(total.group(1).replace(",", "")) * int(total.group(2).replace(",", ""))
    allocated = fields["bytes in allocated blocks"]
    return PymallocInfo(allocated=allocated, arenas=arenas, free=max(0, arenas - allocated))


def pymalloc() -> PymallocInfo | None:
    """pymalloc's figures now (walks every pool: microseconds per MiB), or None."""
    text = _stats_text()
    return None if text is None else parse_pymalloc(text)
