"""Handing alerts to the pre-fork worker their ``pid`` names, through the multiprocess directory.

Behind one ``/metrics`` (``PROMETHEUS_MULTIPROC_DIR``), Alertmanager's request reaches one
worker, and the alert may name another by its ``pid``. Each worker with a receiver has an
inbox, ``$PROMETHEUS_MULTIPROC_DIR/memexport-actions/<pid>/``; the worker that got the request
writes the alerts for a live worker with an inbox there (one JSON file, written to a
temporary name and renamed), and that worker's inbox thread, looking every ``POLL`` seconds,
reads it, removes it and handles it as a relayed request (never handed on again). An inbox
holds at most ``MAX_FILES`` files (more are dropped and counted); the inboxes of workers
that are gone are removed by the next worker that starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

import psutil

from memexport.actions.payload import Alert, Notification, PayloadError, parse
from memexport.actions.relay import payload_of
from memexport.core import forks

__all__ = ["MAX_FILES", "POLL", "Inbox", "inbox_root"]

log = logging.getLogger("memexport")

POLL = 1.0
MAX_FILES = 16


def inbox_root() -> Path | None:
    """``$PROMETHEUS_MULTIPROC_DIR/memexport-actions`` when that directory exists."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get(
        "prometheus_multiproc_dir")
    if not path or not os.path.isdir(path):
        return None
    return Path(path) / "memexport-actions"


class Inbox:
    """This worker's inbox, and the posting of alerts to the others'."""

    def __init__(self, root: Path, handle: Callable[[Notification], object],
                 count: Callable[[str], None]) -> None:
        self.root = root
        self._handle = handle
        self._count = count
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.start()
        _inboxes.add(self)

    @property
    def path(self) -> Path:
        return self.root / str(self._pid)

    def start(self, *, tidy: bool = True) -> None:
        """Make this pid's inbox, remove those of workers gone (``tidy``), start the inbox
        thread."""
        self._pid = os.getpid()
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if tidy:
            for entry in list(self.root.iterdir()):
                if entry.name.isdigit() and not psutil.pid_exists(int(entry.name)):
                    shutil.rmtree(entry, ignore_errors=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(self._stop,),
                                        name="memexport-actions-inbox", daemon=True)
        self._thread.start()

    def owns(self, pid: str) -> bool:
        """Whether ``pid`` is another live worker with an inbox."""
        return (pid.isdigit() and int(pid) != os.getpid() and (self.root / pid).is_dir()
                and psutil.pid_exists(int(pid)))

    def post(self, pid: str, alerts: list[Alert]) -> bool:
        """Leave ``alerts`` in worker ``pid``'s inbox; False (counted dropped) if it is full."""
        target = self.root / pid
        try:
            if sum(1 for n in os.listdir(target) if n.endswith(".json")) >= MAX_FILES:
                self._count("dropped")
                return False
            fd, tmp = tempfile.mkstemp(prefix=".in-", suffix=".tmp", dir=target)
            with os.fdopen(fd, "wb") as f:
                f.write(payload_of(alerts))
            os.replace(tmp, target / (os.path.basename(tmp)[4:-4] + ".json"))
        except OSError:
            self._count("failed")
            return False
        self._count("sent")
        return True

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(POLL):
            try:
                names = sorted(n for n in os.listdir(self.path) if n.endswith(".json"))
            except OSError:
                continue
            for name in names:
                path = self.path / name
                try:
                    body = path.read_bytes()
                    path.unlink()
                    self._handle(parse(body))
                except (OSError, PayloadError):
                    with contextlib.suppress(OSError):
                        path.unlink()
                except Exception as exc:  # never end the inbox thread
                    log.warning("memexport: the actions inbox failed on a file (%s)",
                                type(exc).__name__)

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(POLL + 1)
        shutil.rmtree(self.path, ignore_errors=True)

    def _after_fork(self) -> None:
        """A forked worker gets an inbox of its own (the parent's thread stayed there)."""
        try:
            self.start(tidy=False)  # one mkdir and a thread: nothing that can block
        except OSError:
            pass


_inboxes: weakref.WeakSet[Inbox] = weakref.WeakSet()


@forks.after_fork_in_child
def _after_fork() -> None:
    for inbox in list(_inboxes):
        inbox._after_fork()
