"""The evidence directory: files named by time, alert and action, with a size cap and retention.

A file is ``<UTC time>-<alertname>-<action>.<json|bin>`` (``20261201T230907.123Z-
MemexportProcessMemoryNearLimit-evidence.json``), written to a temporary name and renamed, so
the index never lists a partial file. Before each write the oldest files go until the new
one fits: at most ``max_files`` files and ``max_bytes`` bytes, none older than ``max_age``
seconds. Only files named this way are ever listed, served or removed: the directory may be
shared. It is created with mode 0700 and the files with 0600 (they hold code locations and
type names, not data, but they are the app's internals).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from memexport.core import forks
from memexport.core.checks import positive_number, shown

__all__ = ["DEFAULT_MAX_AGE", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_FILES", "EvidenceStore",
           "file_name"]

DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_MAX_FILES = 100
DEFAULT_MAX_AGE = 7 * 86400.0

_NAME = re.compile(r"(\d{8}T\d{6}\.\d{3}Z)-([A-Za-z0-9_.]{1,64})-([A-Za-z0-9_]{1,64})"
                   r"(?:-(\d+))?\.(json|bin)")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.]")


def file_name(alertname: str, action: str, suffix: str, now: float | None = None) -> str:
    """The name of an evidence file of ``action`` for ``alertname`` made at ``now``."""
    t = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"
    alert = _UNSAFE.sub("_", alertname)[:64] or "alert"
    return f"{stamp}-{alert}-{action}.{suffix}"


class EvidenceStore:
    """Evidence files in ``directory``, bounded in count, bytes and age."""

    def __init__(self, directory: str | os.PathLike[str], *,
                 max_bytes: float = DEFAULT_MAX_BYTES, max_files: int = DEFAULT_MAX_FILES,
                 max_age: float = DEFAULT_MAX_AGE) -> None:
        if not isinstance(directory, str | os.PathLike) or not str(directory):
            raise ValueError(f"evidence_dir must be a path, got {shown(directory)}")
        self.max_bytes = int(positive_number(max_bytes, "evidence_max_bytes"))
        if isinstance(max_files, bool) or not isinstance(max_files, int) or max_files < 1:
            raise ValueError(f"evidence_max_files must be a positive int, got "
                             f"{shown(max_files)}")
        self.max_files = max_files
        self.max_age = positive_number(max_age, "evidence_max_age")
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not os.access(self.directory, os.W_OK):
            raise ValueError(f"evidence_dir {shown(str(directory))} is not writable")
        self._lock = forks.RLock()
        for stale in self.directory.glob(".evidence-*.tmp"):
            try:
                stale.unlink()
            except OSError:
                pass
        with self._lock:
            self._prune(0)

    # -- reading ---------------------------------------------------------------------------

    def _files(self) -> list[tuple[Path, os.stat_result]]:
        out = []
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return []
        for entry in entries:
            if _NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                try:
                    out.append((Path(entry.path), entry.stat(follow_symlinks=False)))
                except OSError:
                    continue
        out.sort(key=lambda f: f[0].name)  # the name starts with the time
        return out

    def usage(self) -> tuple[int, int]:
        """(bytes, files) of evidence on disk now."""
        files = self._files()
        return sum(st.st_size for _, st in files), len(files)

    def index(self) -> list[dict[str, Any]]:
        """The evidence files, newest first."""
        out = []
        for path, st in reversed(self._files()):
            m = _NAME.fullmatch(path.name)
            assert m is not None
            out.append({"name": path.name, "bytes": st.st_size, "alertname": m.group(2),
                        "action": m.group(3), "created": m.group(1)})
        return out

    def path_of(self, name: str) -> Path | None:
        """The file called ``name`` if it is an evidence file here, else None."""
        if not _NAME.fullmatch(name):
            return None
        path = self.directory / name
        return path if path.is_file() and not path.is_symlink() else None

    # -- writing ---------------------------------------------------------------------------

    def _prune(self, incoming: int) -> int:
        """Remove what retention and the caps require to make room for ``incoming`` bytes;
        returns the files removed (lock held)."""
        files = self._files()
        removed = 0
        now = time.time()
        keep = []
        for path, st in files:
            if now - st.st_mtime > self.max_age:
                removed += _unlink(path)
            else:
                keep.append((path, st))
        total = sum(st.st_size for _, st in keep)
        while keep and (total + incoming > self.max_bytes or len(keep) + 1 > self.max_files):
            path, st = keep.pop(0)
            total -= st.st_size
            removed += _unlink(path)
        return removed

    def reserve(self) -> Path:
        """A fresh temporary path in the directory, to write and then ``commit``."""
        fd, tmp = tempfile.mkstemp(prefix=".evidence-", suffix=".tmp", dir=self.directory)
        os.close(fd)
        os.chmod(tmp, 0o600)
        return Path(tmp)

    def commit(self, tmp: Path, alertname: str, action: str, suffix: str) -> str | None:
        """Give ``tmp`` its evidence name, making room first; None (and ``tmp`` removed) if
        it is larger than the cap."""
        try:
            size = tmp.stat().st_size
        except OSError:
            return None
        if size > self.max_bytes:
            _unlink(tmp)
            return None
        with self._lock:
            self._prune(size)
            base = file_name(alertname, action, suffix).rsplit(".", 1)[0]
            name, n = f"{base}.{suffix}", 1
            while (self.directory / name).exists():
                n += 1
                name = f"{base}-{n}.{suffix}"
            os.replace(tmp, self.directory / name)
        return name

    def write(self, alertname: str, action: str, suffix: str, data: bytes) -> str | None:
        """Write one evidence file; its name, or None if it is larger than the cap."""
        tmp = self.reserve()
        try:
            with open(tmp, "wb") as f:
                f.write(data)
        except BaseException:
            _unlink(tmp)
            raise
        return self.commit(tmp, alertname, action, suffix)


def _unlink(path: Path) -> int:
    try:
        path.unlink()
        return 1
    except OSError:
        return 0
