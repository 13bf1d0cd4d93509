"""``memexport top``: parsing and views, the one-shot table through a pipe, and the live view in
a real terminal (tmux: send-keys and capture-pane) against the real demo."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from conftest import ROOT, free_port, require_binary, scrape, start_demo, stop_process

from memexport.top.model import Component, Snapshot, components, parse
from memexport.top.render import State, human, ledger_bar, plain

EXPOSITION = """\
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1000.0
# TYPE memexport_process_memory_limit_bytes gauge
memexport_process_memory_limit_bytes{source="cgroup_v1"} 4000.0
# TYPE memexport_memory_ledger_bytes gauge
memexport_memory_ledger_bytes{class="file"} 100.0
memexport_memory_ledger_bytes{class="components"} 300.0
memexport_memory_ledger_bytes{class="python_objects"} 200.0
memexport_memory_ledger_bytes{class="unattributed"} 400.0
# TYPE memexport_cache_bytes gauge
memexport_cache_bytes{cache="llm"} 250.0
memexport_cache_bytes{cache="tools"} 50.0
# TYPE memexport_cache_requests_total counter
memexport_cache_requests_total{cache="llm",result="hit"} 30.0
memexport_cache_requests_total{cache="llm",result="miss"} 10.0
# TYPE memexport_pool_resources gauge
memexport_pool_resources{pool="db",state="in_use"} 3.0
memexport_pool_resources{pool="db",state="idle"} 1.0
# TYPE memexport_pool_max_resources gauge
memexport_pool_max_resources{pool="db"} 4.0
# TYPE memexport_tracemalloc_site_growth_bytes gauge
memexport_tracemalloc_site_growth_bytes{site="app.py:12"} 5000.0
memexport_tracemalloc_site_growth_bytes{site="__overflow__"} 7.0
"""


def test_parse_and_growth() -> None:
    first = parse("a:1", EXPOSITION, 100.0)
    assert first.rss == 1000 and first.limit == 4000 and first.limit_source == "cgroup_v1"
    assert first.ledger_total == 1000
    assert first.hit_ratios == [("llm", 0.75, 40.0)]
    assert first.pools == [("db", 3.0, 4.0)]
    assert first.growing_sites == [("app.py:12", 5000.0)]
    assert all(c.growth is None for c in first.components)
    second = parse("a:1", EXPOSITION.replace("{cache=\"tools\"} 50.0", "{cache=\"tools\"} 90.0"),
                   110.0, first)
    growth = {c.name: c.growth for c in second.components}
    assert growth == {"llm": 0.0, "tools": 4.0}
    by_growth = [c.name for _, c in components([second], "growth", "")]
    assert by_growth == ["tools", "llm"]
    assert [c.name for _, c in components([second], "bytes", "TOO")] == ["tools"]


def test_ledger_bar_fills_the_width_in_class_order() -> None:
    snap = parse("a", EXPOSITION, 0.0)
    bar = ledger_bar(snap, 50)
    assert sum(w for _, w in bar) == 50
    assert [c for c, _ in bar] == ["file", "components", "python_objects", "unattributed"]
    assert dict(bar)["unattributed"] == 20
    assert ledger_bar(Snapshot("x", 0.0), 50) == []


def test_keys() -> None:
    s = State()
    for ch in "s":
        s.key(ch)
    assert s.sort == "growth"
    for ch in "/ll\x7fm\r":
        s.key(ch)
    assert s.filter == "lm" and s.typing is None
    s.key("c")
    assert s.filter == ""
    s.key("/")
    s.key("x")
    s.key("\x1b")
    assert s.filter == "" and s.typing is None
    s.key("q")
    assert s.quit


def test_human() -> None:
    assert human(None) == "-" and human(512) == "512 B" and human(3 * 2**20) == "3.0 MiB"
    assert human(2048, rate=True) == "+2.0 KiB/s" and human(-2048, rate=True) == "-2.0 KiB/s"


def test_plain_view_shows_unreachable_targets() -> None:
    text = plain([Snapshot("gone:1", 0.0, error="URLError: refused"),
                  parse("a:1", EXPOSITION, 0.0)], State())
    assert "gone:1: unreachable (URLError: refused)" in text
    assert "cache llm: hit ratio 75.0% of 40 lookups" in text
    assert "pool db: 3 in use of 4 (75%)" in text
    assert "growing site app.py:12" in text
    assert Component("cache", "llm", 250.0).name in text


def run_top(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memexport.cli", "top", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def demo_port() -> Iterator[int]:
    port = free_port()
    demo = start_demo(port, scenario="leak", tick=0.2, collector_interval=0.5)
    try:
        # /metrics answers before the demo's parts are built and its collector has ticked.
        deadline = time.monotonic() + 90
        while "memexport_memory_ledger_bytes{" not in scrape(port):
            assert time.monotonic() < deadline and demo.poll() is None, "no ledger in 90 s"
            time.sleep(0.2)
        yield port
    finally:
        stop_process(demo)


def test_one_shot_table_through_a_pipe(demo_port: int) -> None:
    res = run_top(f"127.0.0.1:{demo_port}", "--interval", "0.5")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert f"127.0.0.1:{demo_port}: rss " in out
    assert "  ledger [" in out and "? unattributed" in out
    assert "hit ratio" in out and "in use of" in out
    assert "components by bytes:" in out and "embeddings" in out
    res = run_top(f"127.0.0.1:{free_port()}", "--interval", "0")
    assert res.returncode == 1 and "unreachable" in res.stdout


def test_bad_arguments() -> None:
    res = run_top("--timeout", "0")
    assert res.returncode == 2 and "--timeout must be positive" in res.stderr


class Tmux:
    """A private tmux server (own socket) running one command in a fixed-size window."""

    def __init__(self, command: str) -> None:
        self.bin = require_binary("tmux")
        self.socket = f"memexport-test-{uuid.uuid4().hex[:8]}"
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", "200", "-y", "60",
                 command)
        self.path = self.run("display-message", "-p", "#{socket_path}").stdout.strip()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.bin, "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=30)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "top").stdout

    def keys(self, *keys: str) -> None:
        res = self.run("send-keys", "-t", "top", *keys)
        assert res.returncode == 0, res.stderr

    def alive(self) -> bool:
        return self.run("has-session", "-t", "top").returncode == 0

    def close(self) -> None:
        self.run("kill-server")
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)  # the server leaves its socket file behind


def wait_screen(tmux: Tmux, cond: Callable[[str], bool], what: str, deadline: float = 60) -> str:
    end = time.monotonic() + deadline
    screen = ""
    while time.monotonic() < end:
        screen = tmux.screen()
        if cond(screen):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; screen:\n{screen}")


def table_part(screen: str) -> str:
    return screen[screen.index("components by"):]


def test_live_view_in_a_real_terminal(demo_port: int) -> None:
    env = f"PYTHONPATH={shlex.quote(os.environ.get('PYTHONPATH', str(ROOT / 'src')))}"
    cmd = (f"cd {shlex.quote(str(ROOT))} && env -u COLUMNS -u LINES {env} TERM=xterm-256color "
           f"{shlex.quote(sys.executable)} -m memexport.cli top 127.0.0.1:{demo_port} "
           f"--interval 0.5")
    tmux = Tmux(cmd)
    try:
        screen = wait_screen(tmux, lambda s: "components by bytes" in s and "embeddings" in s
                             and "keys: s sort" in s, "the live view")
        assert f"127.0.0.1:{demo_port}: rss" in screen
        assert "ledger █" in screen and "unattributed" in screen and "malloc_free" in screen
        assert "caches: hit ratio" in screen and "pools: saturation" in screen
        assert "top allocation sites" in screen
        assert "keys: s sort" in screen
        tmux.keys("s")
        wait_screen(tmux, lambda s: "components by growth" in s, "sort by growth")
        tmux.keys("/", "l", "l", "m", "Enter")
        screen = wait_screen(tmux, lambda s: "filter: 'llm'" in s, "the filter")
        table = table_part(screen)
        assert "llm_responses" in table and "embeddings" not in table
        tmux.keys("c")
        wait_screen(tmux, lambda s: "filter:" not in s and "embeddings" in table_part(s),
                    "the filter cleared")
        tmux.keys("q")
        end = time.monotonic() + 30
        while tmux.alive() and time.monotonic() < end:
            time.sleep(0.1)
        assert not tmux.alive(), "memexport top did not quit on q:\n" + tmux.screen()
    finally:
        tmux.close()
