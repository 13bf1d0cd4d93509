"""The "Where memory goes" dashboard shows what issue 13 asks, and the process one links to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "grafana" / "dashboards"


def load(name: str) -> dict[str, Any]:
    return json.loads((DASHBOARDS / f"{name}.json").read_text())  # type: ignore[no-any-return]


def panels(d: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in d["panels"]}


def exprs(p: dict[str, Any]) -> str:
    return " ".join(t["expr"] for t in p.get("targets") or [])


def test_identity_and_link_from_the_process_dashboard() -> None:
    d = load("memory")
    assert (d["uid"], d["title"]) == ("memexport-memory", "memexport / Where memory goes")
    links = load("process")["links"]
    assert any(link.get("url") == "/d/memexport-memory" and link["includeVars"]
               for link in links), links


def test_the_ledger_is_a_stack_that_sums_to_rss() -> None:
    p = panels(load("memory"))["RSS ledger (stacked, sums to RSS)"]
    assert p["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    assert "sum by (class) (memexport_memory_ledger_bytes{" in exprs(p)
    assert "process_resident_memory_bytes" in exprs(p)
    [override] = p["fieldConfig"]["overrides"]
    assert {"id": "custom.stacking", "value": {"group": "A", "mode": "none"}} in (
        override["properties"])


def test_the_panels_issue_13_asks_for() -> None:
    ps = panels(load("memory"))
    wanted = {
        "Unattributed share by instance": 'class="unattributed"',
        "Retained share of RSS": 'class=~"malloc_free|pymalloc_free"',
        "Memory pressure (PSI)": "memexport_memory_pressure_seconds_total",
        "cgroup memory events": "memexport_cgroup_memory_events_total",
        "Top growing allocation sites": "memexport_tracemalloc_site_growth_bytes",
    }
    for title, needle in wanted.items():
        assert needle in exprs(ps[title]), title
