"""The npm packages some tests check shipped files against (tests/npm/package.json, pinned by
its package-lock.json), installed once per lock file into a cache directory, never into the
checkout (tests/cache_support.py says where).

``node_modules()`` installs them (``npm ci``) when the cache lacks that lock's install;
``run_node`` and ``tsc`` run node and TypeScript in a work directory that sees them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from cache_support import cache_root, install_lock
from conftest import ROOT, require_binary

NPM_PROJECT = ROOT / "tests" / "npm"
PROJECT_FILES = ("package.json", "package-lock.json", ".npmrc")


def _lock_digest() -> str:
    h = hashlib.sha256()
    for name in PROJECT_FILES:
        h.update(name.encode() + b"\0" + (NPM_PROJECT / name).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def node_modules() -> Path:
    """The installed ``node_modules`` of tests/npm (``npm ci`` into the cache on first use)."""
    require_binary("node")
    npm = require_binary("npm")
    root = cache_root()
    target = root / f"npm-{_lock_digest()}"
    marker = target / ".installed"
    if marker.exists():
        return target / "node_modules"
    with install_lock("npm"):  # another test run on this machine may be installing
        if not marker.exists():
            staging = root / f"{target.name}.partial-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            for name in PROJECT_FILES:
                shutil.copy2(NPM_PROJECT / name, staging / name)
            done = subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=staging, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                shutil.rmtree(staging, ignore_errors=True)
                raise AssertionError(f"npm ci of tests/npm failed ({done.returncode}):\n"
                                     f"{done.stdout}\n{done.stderr}")
            (staging / ".installed").write_text("ok\n")
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
    return target / "node_modules"


def workdir(path: Path) -> Path:
    """``path`` made a node project directory: it sees the installed node_modules."""
    path.mkdir(parents=True, exist_ok=True)
    link = path / "node_modules"
    if not link.exists():
        link.symlink_to(node_modules(), target_is_directory=True)
    return path


def run_node(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``node ARGS`` in ``cwd`` (made a work directory first)."""
    node = require_binary("node")
    workdir(cwd)
    return subprocess.run([node, *args], cwd=cwd, input=stdin, capture_output=True, text=True,
                          timeout=300)


def tsc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The pinned TypeScript compiler, ``tsc ARGS``, in ``cwd``."""
    compiler = node_modules() / "typescript" / "bin" / "tsc"
    return run_node(cwd, str(compiler), *args)
