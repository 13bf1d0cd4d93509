"""CrewAI for real, in a venv of its own: crewai pins older openai, openai-agents and pydantic
than the dev extra, so it cannot share the test environment (docs/integrations.md).

The venv (crewai pinned, plus memexport's runtime dependencies; memexport itself comes from
this checkout on PYTHONPATH, so the cached venv never goes stale) is built once per
requirement set under the test cache (tests/cache_support.py) and reused; a failing
``pip install`` fails the test with pip's error. In it, tests/crewai_app.py runs a real
``Crew`` with a tool, the crew's tool cache and a unified ``Memory`` against the fake
OpenAI-compatible server on loopback, instrumented with no configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cache_support import cache_root, install_lock
from conftest import ROOT

CREWAI = "crewai==1.15.30"
_PIP_NOISE = ("WARNING: Location 'file:", "[notice]")


def requirements() -> list[str]:
    """crewai pinned, and memexport's runtime dependencies as pyproject.toml lists them."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[\n(.*?)^\]", text, re.M | re.S)
    assert block, "pyproject.toml: no [project] dependencies"
    return [CREWAI, *re.findall(r'"([^"]+)"', block.group(1))]


def crewai_venv() -> Path:
    """The venv's python: built on first use (``python -m venv`` + ``pip install``)."""
    reqs = requirements()
    key = hashlib.sha256("\n".join([sys.version, *reqs]).encode()).hexdigest()[:16]
    venv = cache_root() / f"crewai-venv-{key}"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists():
        return python
    with install_lock("crewai-venv"):
        if not marker.exists():
            shutil.rmtree(venv, ignore_errors=True)
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                 *reqs], capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                errors = "\n".join(line for line in (done.stdout + done.stderr).splitlines()
                                   if not line.startswith(_PIP_NOISE))
                shutil.rmtree(venv, ignore_errors=True)
                raise AssertionError(f"pip install {' '.join(reqs)} failed "
                                     f"({done.returncode}):\n{errors}")
            marker.write_text(json.dumps({"requirements": reqs,
                                          "install_seconds": time.monotonic() - started}))
    return python


@pytest.fixture(scope="module")
def crew_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What tests/crewai_app.py measured, run once for the module."""
    python = crewai_venv()
    scratch = tmp_path_factory.mktemp("crewai")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    env.pop("PYTHONSTARTUP", None)
    done = subprocess.run([str(python), str(ROOT / "tests" / "crewai_app.py"), str(scratch)],
                          cwd=scratch, env=env, capture_output=True, text=True, timeout=600)
    result = scratch / "result.json"
    if done.returncode != 0 or not result.exists():
        raise AssertionError(f"crewai_app.py exited {done.returncode}:\n{done.stdout[-4000:]}\n"
                             f"{done.stderr[-8000:]}")
    out: dict[str, Any] = json.loads(result.read_text())
    return out


def test_it_ran_the_pinned_crewai_on_the_fake_llm(crew_run: dict[str, Any]) -> None:
    assert crew_run["crewai"] == CREWAI.split("==")[1]
    assert crew_run["result"] == "done"
    assert crew_run["requests"].get("/v1/chat/completions", 0) >= 3  # tool, tool, answer
    assert crew_run["requests"].get("/v1/embeddings", 0) >= 1       # the memory's embedder


def test_the_crews_tool_cache_is_a_cache(crew_run: dict[str, Any]) -> None:
    """``memexport.cache(agent.cache_handler)``: the same lookup twice is a miss (the tool
    runs, its result is put) then a hit (the tool does not run)."""
    cache = crew_run["cache"]
    assert crew_run["same_handler"]  # the crew's handler, shared by its agents
    assert cache["cache_requests_total[miss]"] == crew_run["tool_runs"] == 1
    assert cache["cache_requests_total[hit]"] == 1
    assert cache["cache_puts_total"] == crew_run["cache_entries"] == 1
    assert cache["cache_items"] == crew_run["cache_entries"]
    assert cache["cache_bytes"] > 0
    assert "cache_max_items" not in cache  # crewai's tool cache has no capacity


def test_memory_records_are_counted_without_querying_the_store(crew_run: dict[str, Any]) -> None:
    """The record before instrumenting (counted once), the crew's own save after the task,
    three ``remember`` and one ``forget``: the count equals the store's own."""
    assert crew_run["removed"] == 1
    for name in ("memory", "agent", "crew"):  # the Memory, the agent using it, its crew
        assert crew_run[name]["agent_memory_items"] == crew_run["records"], name
    assert crew_run["records"] >= 4


def test_agents_and_crews_have_a_lifecycle(crew_run: dict[str, Any]) -> None:
    for name in ("agent", "crew", "memory"):
        assert crew_run[name]["agents"] == 1
        assert crew_run[name]["agents_created_total"] == 1
    assert crew_run["after_gc"]["agents"] == 0
    assert crew_run["after_gc"]["agents_finalized_total"] == 1
    assert "agent_memory_items" not in crew_run["after_gc"]
