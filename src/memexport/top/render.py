"""Views of ``memexport top``: a plain-text table (non-TTY, one shot) and a rich layout (live)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from memexport.top.model import LEDGER_CLASSES, Snapshot, components

__all__ = ["SORTS", "State", "human", "ledger_bar", "plain", "rich_view"]

SORTS = ("bytes", "growth", "name")
#: One letter per ledger class in the plain bar, and a colour in the rich one.
CLASS_MARK = {"file": "F", "components": "C", "python_objects": "P", "malloc_used": "M",
              "pymalloc_free": "p", "malloc_free": "m", "unattributed": "?"}
CLASS_COLOUR = {"file": "grey50", "components": "green", "python_objects": "cyan",
                "malloc_used": "magenta", "pymalloc_free": "yellow", "malloc_free": "orange3",
                "unattributed": "red"}
TOP_N = 15


class State:
    """What the keys change: sort order, filter text, whether a filter is being typed."""

    def __init__(self) -> None:
        self.sort = "bytes"
        self.filter = ""
        self.typing: str | None = None  # the filter being typed, None when not typing
        self.quit = False

    def key(self, ch: str) -> None:
        """Apply one key press (``s`` sort, ``/`` filter, ``c`` clear, ``q`` quit)."""
        if self.typing is not None:
            if ch in ("\r", "\n"):
                self.filter, self.typing = self.typing, None
            elif ch == "\x1b":
                self.typing = None
            elif ch in ("\x7f", "\b"):
                self.typing = self.typing[:-1]
            elif ch.isprintable():
                self.typing += ch
            return
        if ch == "q":
            self.quit = True
        elif ch == "s":
            self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        elif ch == "/":
            self.typing = ""
        elif ch == "c":
            self.filter = ""


def human(n: float | None, rate: bool = False) -> str:
    """Bytes in IEC units (``12.3 MiB``), ``-`` for None; ``rate`` adds ``/s`` and a sign."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "-"
    sign = "+" if rate and n > 0 else ("-" if n < 0 else "")
    v = abs(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if v < 1024 or unit == "TiB":
            text = f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
            return f"{sign}{text}{'/s' if rate else ''}"
        v /= 1024
    return str(n)  # pragma: no cover


def ledger_bar(snap: Snapshot, width: int = 60) -> list[tuple[str, int]]:
    """(class, characters) for a bar of ``width`` whose parts are the ledger's classes."""
    total = snap.ledger_total
    if total <= 0:
        return []
    parts = [(c, snap.ledger.get(c, 0.0) / total * width) for c in LEDGER_CLASSES]
    out = [(c, int(w)) for c, w in parts]
    rest = width - sum(w for _, w in out)
    for c, _w in sorted(parts, key=lambda p: -(p[1] - int(p[1])))[:rest]:
        i = [name for name, _ in out].index(c)
        out[i] = (c, out[i][1] + 1)
    return [(c, w) for c, w in out if w]


def _header(snap: Snapshot) -> str:
    if snap.error:
        return f"{snap.url}: unreachable ({snap.error})"
    limit = f" / limit {human(snap.limit)} ({snap.limit_source})" if snap.limit else ""
    return f"{snap.url}: rss {human(snap.rss)}{limit}"


def plain(snaps: Sequence[Snapshot], state: State, width: int = 60) -> str:
    """Everything as plain text: for pipes, logs and ``--once``."""
    lines: list[str] = []
    for snap in snaps:
        lines.append(_header(snap))
        if snap.error:
            continue
        bar = "".join(CLASS_MARK[cls] * w for cls, w in ledger_bar(snap, width))
        if bar:
            lines.append(f"  ledger [{bar}]")
            lines.append("  " + "  ".join(
                f"{CLASS_MARK[cls]} {cls} {human(snap.ledger.get(cls))}"
                for cls in LEDGER_CLASSES))
        for cache, ratio, n in snap.hit_ratios[:TOP_N]:
            lines.append(f"  cache {cache}: hit ratio {ratio:.1%} of {n:,.0f} lookups")
        for pool, used, cap in snap.pools[:TOP_N]:
            sat = f"{used / cap:.0%}" if cap and not math.isnan(cap) else "-"
            lines.append(f"  pool {pool}: {used:,.0f} in use of {cap:,.0f} ({sat})")
        for site, n in snap.sites[:5]:
            lines.append(f"  site {site}: {human(n)}")
        for site, n in snap.growing_sites[:5]:
            lines.append(f"  growing site {site}: {human(n)} grown")
    rows = components(snaps, state.sort, state.filter)
    flt = f", filter {state.filter!r}" if state.filter else ""
    lines.append(f"components by {state.sort}{flt}:")
    lines.append(f"  {'kind':<13} {'name':<32} {'bytes':>12} {'growth':>14}  target")
    for url, c in rows[:TOP_N]:
        lines.append(f"  {c.kind:<13} {c.name[:32]:<32} {human(c.bytes):>12} "
                     f"{human(c.growth, rate=True):>14}  {url}")
    if not rows:
        lines.append("  (none)")
    return "\n".join(lines) + "\n"


def rich_view(snaps: Sequence[Snapshot], state: State, width: int = 60) -> Any:
    """The live layout as a rich renderable (rich imported here: it is an optional extra)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    for snap in snaps:
        parts.append(Text(_header(snap), style="bold" if not snap.error else "bold red"))
        if snap.error:
            continue
        bar = Text("ledger ")
        for cls, w in ledger_bar(snap, width):
            bar.append("█" * w, style=CLASS_COLOUR[cls])
        parts.append(bar)
        legend = Text("")
        for cls in LEDGER_CLASSES:
            legend.append("■ ", style=CLASS_COLOUR[cls])
            legend.append(f"{cls} {human(snap.ledger.get(cls))}  ")
        parts.append(legend)
        side = Table(show_edge=False, box=None, pad_edge=False)
        side.add_column("caches: hit ratio")
        side.add_column("pools: saturation")
        side.add_column("top allocation sites")
        caches = [f"{n}: {r:.1%}" for n, r, _ in snap.hit_ratios[:5]]
        pools = [f"{n}: {u:,.0f}/{m:,.0f}" for n, u, m in snap.pools[:5]]
        sites = [f"{s}: {human(b)}" for s, b in (snap.growing_sites or snap.sites)[:5]]
        for i in range(max(len(caches), len(pools), len(sites), 1)):
            side.add_row(*(col[i] if i < len(col) else "" for col in (caches, pools, sites)))
        parts.append(side)
    rows = components(snaps, state.sort, state.filter)
    flt = f"  filter: {state.filter!r}" if state.filter else ""
    table = Table(title=f"components by {state.sort}{flt}", expand=False)
    for col, justify in (("kind", "left"), ("name", "left"), ("bytes", "right"),
                         ("growth", "right"), ("target", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for url, c in rows[:TOP_N]:
        table.add_row(c.kind, c.name, human(c.bytes), human(c.growth, rate=True), url)
    parts.append(table)
    typing = f"  filter: {state.typing}_" if state.typing is not None else ""
    keys = Text(f"memexport top  keys: s sort ({'/'.join(SORTS)})  / filter  c clear  q quit"
                f"{typing}", style="reverse")
    return Group(keys, *parts)  # keys first: a short terminal crops the bottom
