"""Where the test suite keeps what it installs between runs (npm packages, venvs), never in
the checkout: ``$MEMEXPORT_TEST_CACHE``, else ``$XDG_CACHE_HOME/memexport``, else
``~/.cache/memexport``; and a lock so two runs on one machine do not install at once."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def cache_root() -> Path:
    """The cache directory (made if missing)."""
    explicit = os.environ.get("MEMEXPORT_TEST_CACHE")
    if explicit:
        root = Path(explicit)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "memexport"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def install_lock(name: str) -> Iterator[None]:
    """Hold the machine-wide lock ``name`` of the cache while installing into it."""
    with open(cache_root() / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
