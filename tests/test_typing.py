"""The typed public API: ``mypy --strict`` passes on a user script calling every public
function, through the editable install (the package's ``py.typed``), and the script runs."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USAGE = ROOT / "tests" / "typing" / "usage.py"


def test_mypy_strict_passes_on_a_script_using_every_public_function(tmp_path: Path) -> None:
    env = {**os.environ, "MYPYPATH": str(ROOT / "src")}
    res = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", str(tmp_path), str(USAGE)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_typed_script_runs() -> None:
    runpy.run_path(str(USAGE))


def test_every_public_function_is_in_the_script() -> None:
    import memexport

    text = USAGE.read_text()
    missing = [n for n in memexport.__all__ if f"memexport.{n}" not in text]
    assert not missing, f"tests/typing/usage.py does not use {missing}"
