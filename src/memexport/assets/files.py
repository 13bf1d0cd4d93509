"""Writing a set of generated files under a directory, and listing how a directory differs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["differences", "write_files"]


def differences(root: Path, files: Mapping[str, str], stale: Iterable[str] = ()) -> list[str]:
    """How ``root`` differs from ``files`` (``{relative path: text}``): files changed or
    missing, and files matching a ``stale`` glob (``rules/*.rules.yml``) that are not
    generated any more."""
    out = []
    for name, text in sorted(files.items()):
        path = root / name
        if not path.is_file():
            out.append(f"{name} (missing)")
        elif path.read_text(encoding="utf-8") != text:
            out.append(f"{name} (differs)")
    for pattern in stale:
        for path in sorted(root.glob(pattern)):
            name = path.relative_to(root).as_posix()
            if name not in files:
                out.append(f"{name} (stale: not generated)")
    return out


def write_files(root: Path, files: Mapping[str, str]) -> list[str]:
    """Write ``files`` under ``root`` (directories made as needed); return the names written
    (unchanged files are left alone; nothing is deleted)."""
    written = []
    for name, text in sorted(files.items()):
        path = root / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(name)
    return written
