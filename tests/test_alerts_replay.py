"""The replay suite: 24-hour (and longer) histories of one target through promtool against
alerts/*.rules.yml, judged by severity (alerts/scenarios/). Healthy histories must stay silent,
every fault must be ticketed or paged by its deadline; the table is printed, and the one in
alerts/README.md must be the suite's own output."""

from __future__ import annotations

import sys
import time

import pytest
from conftest import ROOT, require_binary

sys.path.insert(0, str(ROOT / "alerts" / "scenarios"))
from catalog import scenarios
from run import markdown, replay_all, table

RULES = sorted((ROOT / "alerts").glob("*.rules.yml"))
README = ROOT / "alerts" / "README.md"
BEGIN, END = "<!-- replay-table -->", "<!-- /replay-table -->"
#: A short fault replayed again in each other deployment mode (alerts/tests/ runs every promtool
#: case in every mode; these are whole histories: process memory, pools, cleanups).
IN_MODE = {"multiprocess": "fast-leak", "dual-otel": "pool-leak",
           "dual-source": "cleanup-failing"}


@pytest.fixture(scope="module")
def results():  # type: ignore[no-untyped-def]
    promtool = require_binary("promtool")
    started = time.monotonic()
    out = replay_all(scenarios(), RULES, "single", 2, promtool)
    print(f"\n{table(out)}\n\n{len(out)} scenarios replayed in "
          f"{time.monotonic() - started:.0f}s")
    return out


def test_every_verdict_is_right(results) -> None:  # type: ignore[no-untyped-def]
    wrong = [r for r in results if not r.ok]
    assert not wrong, "wrong verdicts:\n" + table(results)


def test_the_suite_covers_the_issue(results) -> None:  # type: ignore[no-untyped-def]
    names = {r.scenario.name for r in results}
    healthy = {r.scenario.name for r in results if r.scenario.healthy}
    assert {"gc-sawtooth", "warm-up", "restarts", "cache-full", "pool-bursts", "short-sessions",
            "daily-cycle", "held-connection"} <= healthy
    assert {"slow-leak", "fast-leak", "fast-leak-deploy", "oom-loop", "spike", "fd-leak",
            "unbounded-cache", "thrashing-small", "thrashing-large", "pool-exhausted",
            "pool-leak", "history-40", "history-10", "sessions-leak", "agents-leak",
            "cleanup-failing", "cleanup-stale", "limit-unknown", "crash-loop"} <= names
    for r in results:  # restarts are failed scrapes; every fault is after some healthy time
        assert r.scenario.healthy or r.scenario.onset is not None


def test_readme_table_is_the_suites_output(results) -> None:  # type: ignore[no-untyped-def]
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, f"{README} lacks the {BEGIN} markers"
    committed = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert committed == markdown(results).strip(), (
        "alerts/README.md's replay table is stale; paste the output of "
        "`python alerts/scenarios/run.py --markdown`:\n" + markdown(results))


@pytest.mark.parametrize("mode", sorted(IN_MODE))
def test_a_fault_replays_the_same_in_another_mode(mode: str) -> None:
    promtool = require_binary("promtool")
    chosen = [s for s in scenarios() if s.name == IN_MODE[mode]]
    out = replay_all(chosen, RULES, mode, 1, promtool)
    assert all(r.ok for r in out), table(out)
