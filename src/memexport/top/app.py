"""The ``memexport top`` loop: scrape every target each interval, draw, read keys.

On a terminal it draws a live view with rich (the ``top`` extra) in the alternate screen and
reads single key presses (cbreak mode, restored on exit); anywhere else (a pipe, a file, a
CI log) it prints one plain table: two scrapes ``--interval`` apart, so growth is shown.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from memexport.top.model import Snapshot, fetch
from memexport.top.render import State, plain, rich_view

__all__ = ["main", "scrape_all"]

DEFAULT_URL = "http://127.0.0.1:9464/metrics"


def scrape_all(urls: Sequence[str], previous: dict[str, Snapshot], timeout: float
               ) -> list[Snapshot]:
    """One snapshot per URL (growth against ``previous``, which is updated)."""
    snaps = [fetch(u, timeout, previous.get(u)) for u in urls]
    for s in snaps:
        if s.error is None:
            previous[s.url] = s
    return snaps


def _once(urls: Sequence[str], interval: float, timeout: float, state: State,
          out: TextIO) -> int:
    previous: dict[str, Snapshot] = {}
    snaps = scrape_all(urls, previous, timeout)
    if interval > 0 and any(s.error is None for s in snaps):
        time.sleep(interval)
        snaps = scrape_all(urls, previous, timeout)
    out.write(plain(snaps, state))
    out.flush()
    return 0 if any(s.error is None for s in snaps) else 1


def _live(urls: Sequence[str], interval: float, timeout: float, state: State) -> int:
    import termios
    import tty

    from rich.console import Console
    from rich.live import Live

    console = Console()
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    previous: dict[str, Snapshot] = {}
    try:
        tty.setcbreak(fd)
        snaps = scrape_all(urls, previous, timeout)
        with Live(rich_view(snaps, state), console=console, screen=True,
                  auto_refresh=False) as live:
            due = time.monotonic() + interval
            while not state.quit:
                wait = max(0.0, due - time.monotonic())
                ready, _, _ = select.select([fd], [], [], wait)
                if ready:
                    for ch in os.read(fd, 64).decode("utf-8", "ignore"):
                        state.key(ch)
                if time.monotonic() >= due:
                    snaps = scrape_all(urls, previous, timeout)
                    due = time.monotonic() + interval
                live.update(rich_view(snaps, state), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="memexport top",
        description="Live terminal view of memexport /metrics endpoints: the RSS ledger, "
        "components by bytes and growth, cache hit ratios, pool saturation, allocation "
        "sites. Keys: s sort, / filter, c clear filter, q quit. Without a terminal it "
        "prints one plain table.")
    p.add_argument("urls", nargs="*", metavar="URL",
                   help=f"a /metrics URL or host:port (default {DEFAULT_URL})")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                   help="seconds between scrapes (default 2; the one-shot table scrapes twice "
                   "this far apart to show growth, 0 once)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                   help="scrape timeout (default 5)")
    p.add_argument("--once", action="store_true", help="print one plain table even on a TTY")
    p.add_argument("--sort", choices=("bytes", "growth", "name"), default="bytes")
    p.add_argument("--filter", default="", metavar="TEXT",
                   help="only components whose kind or name contains TEXT")
    args = p.parse_args(argv)
    if args.interval < 0 or (not args.once and args.interval == 0 and out.isatty()):
        p.error(f"--interval must be positive, got {args.interval!r}")
    if args.timeout <= 0:
        p.error(f"--timeout must be positive, got {args.timeout!r}")
    urls = args.urls or [DEFAULT_URL]
    state = State()
    state.sort, state.filter = args.sort, args.filter
    if args.once or not (out.isatty() and sys.stdin.isatty()):
        return _once(urls, args.interval, args.timeout, state, out)
    try:
        import rich  # noqa: F401
    except ImportError:
        sys.stderr.write("memexport top: the live view needs rich (pip install "
                         "'memexport[top]'); printing one table instead\n")
        return _once(urls, args.interval, args.timeout, state, out)
    return _live(urls, args.interval, args.timeout, state)
