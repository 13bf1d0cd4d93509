"""The README Quickstart runs as pasted: it is examples/quickstart.py, run here as shipped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import ROOT, free_port, stop_process
from prometheus_client.parser import text_string_to_metric_families

EXAMPLE = ROOT / "examples" / "quickstart.py"
README = ROOT / "README.md"

#: Series the quickstart must show once it has served a while: {(name, labels)}.
EXPECTED = {
    ("memexport_cache_items", (("cache", "llm_responses"),)),
    ("memexport_cache_items", (("cache", "embeddings"),)),
    ("memexport_cache_max_items", (("cache", "llm_responses"),)),
    ("memexport_cache_max_items", (("cache", "embeddings"),)),
    ("memexport_cache_requests_total", (("cache", "llm_responses"), ("result", "miss"))),
    ("memexport_cache_requests_total", (("cache", "embeddings"), ("result", "hit"))),
    ("memexport_pool_resources", (("pool", "llm_clients"), ("state", "idle"))),
    ("memexport_pool_max_resources", (("pool", "llm_clients"),)),
    ("memexport_pool_acquires_total", (("pool", "llm_clients"),)),
    ("memexport_conversations", (("conversation", "support"),)),
    ("memexport_conversation_messages", (("conversation", "support"),)),
    ("memexport_conversation_messages_added_total", (("conversation", "support"),)),
    ("memexport_process_memory_budget_bytes", ()),
    ("process_resident_memory_bytes", ()),
}


def quickstart_block() -> str:
    """The first ```python block of the README's Quickstart section."""
    text = README.read_text()
    section = text.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "README's Quickstart has no ```python block"
    return found.group(1)


def run_example(tmp_path: Path, *args: str, port: int) -> subprocess.Popen[str]:
    """The example file as a user runs it: its own process, from another directory."""
    env = {**os.environ, "MEMEXPORT_PORT": str(port), "MEMEXPORT_ADDR": "127.0.0.1"}
    return subprocess.Popen([sys.executable, str(EXAMPLE), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def scrape_samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_readme_quickstart_is_the_example_file() -> None:
    assert quickstart_block() == EXAMPLE.read_text(), (
        "README's Quickstart block and examples/quickstart.py differ: paste the file into it")


def test_readme_install_line_names_the_extra_the_example_needs() -> None:
    section = README.read_text().split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    assert 'pip install "memexport[cachetools]"' in section
    assert 'pip install "memexport[cachetools]"' in EXAMPLE.read_text()


def test_readme_starts_with_the_demo_and_the_whole_suite() -> None:
    head = README.read_text().split("\n## ", 1)[0]
    assert "memexport demo" in head and "./scripts/test" in head


def test_quickstart_serves_its_components(tmp_path: Path) -> None:
    port = free_port()
    proc = run_example(tmp_path, "--seconds", "600", port=port)
    try:
        deadline = time.monotonic() + 120  # an upper bound on a loaded machine, not a timing
        seen: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"quickstart exited:\n{stop_process(proc)}"
            try:
                seen = scrape_samples(port)
            except (urllib.error.URLError, OSError):
                seen = {}
            hits = seen.get(("memexport_cache_requests_total",
                             (("cache", "embeddings"), ("result", "hit"))), 0)
            if hits > 0 and EXPECTED <= seen.keys():
                break
            time.sleep(0.2)
        missing = sorted(EXPECTED - seen.keys())
        assert not missing, f"quickstart /metrics lacks {missing}"
        assert seen[("memexport_cache_requests_total",
                     (("cache", "embeddings"), ("result", "hit")))] > 0
        assert seen[("memexport_pool_acquires_total", (("pool", "llm_clients"),))] > 0
        assert seen[("memexport_conversation_messages_added_total",
                     (("conversation", "support"),))] > 0
        assert seen[("memexport_process_memory_budget_bytes", ())] == 2 * 2**30
    finally:
        out = stop_process(proc)
    assert "Traceback" not in out, out


def test_quickstart_stops_by_itself_with_seconds(tmp_path: Path) -> None:
    proc = run_example(tmp_path, "--seconds", "0.5", port=free_port())
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"--seconds 0.5 did not stop it:\n{stop_process(proc)}") from None
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
