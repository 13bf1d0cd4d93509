"""docs/metrics.md holds the exposition to account: no metric unlisted, none listed unexported.

The populated registry is the demo's (every component kind, opt-in probes on), scraped for real.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from conftest import HOST_DEPENDENT, ROOT, free_port, scrape, start_demo, stop_process
from prometheus_client.parser import text_string_to_metric_families

CATALOGUE = ROOT / "docs" / "metrics.md"
#: Exported only alongside the OpenTelemetry exporter, which the demo does not run; held to the
#: catalogue by tests/test_otel_providers.py instead.
OTEL_ONLY = {"memexport_opentelemetry_export_failures"}
#: Catalogued series the demo does not produce, each held to the catalogue by the test of its
#: integration (tests/test_integrations_*.py: ``assert_catalogued``) instead. Parser names
#: (counters without ``_total``) -> why the demo lacks it.
NOT_IN_DEMO = {
    "memexport_pool_expired": "httpx/httpcore pools only; the demo makes no HTTP requests "
                              "(tests/test_integrations_httpx.py)",
    "memexport_agent_runs": "OpenAI Agents SDK runs only "
                            "(tests/test_integrations_openai_agents.py)",
    "memexport_agent_runs_active": "OpenAI Agents SDK runs only",
    "memexport_agent_run_failures": "OpenAI Agents SDK runs only",
    "memexport_asyncio_tasks": "opt-in asyncio source; the demo runs no event loop "
                               "(tests/test_integrations_asyncio.py)",
    "memexport_asyncio_task_oldest_age_seconds": "opt-in asyncio source, as above",
}
ROW = re.compile(r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*(gauge|counter|histogram|info)\s*\|")


def catalogue() -> dict[str, str]:
    """Metric name (counters without ``_total``, as the parser names families) -> type."""
    out: dict[str, str] = {}
    for line in CATALOGUE.read_text().splitlines():
        m = ROW.match(line)
        if m:
            name, typ = m.groups()
            out[name.removesuffix("_total") if typ == "counter" else name] = typ
    return out


def families(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


@pytest.fixture(scope="module")
def exposition() -> Iterator[str]:
    port = free_port()
    demo = start_demo(port, scenario="leak", tick=0.1)
    try:
        # Every part must have taken a few steps and the collector a few readings: wait
        # (bounded) until every catalogued family is there, then let the test say what is not.
        wanted = set(catalogue()) - OTEL_ONLY - set(HOST_DEPENDENT) - set(NOT_IN_DEMO)
        deadline = time.monotonic() + 60
        text = scrape(port)
        while time.monotonic() < deadline and not wanted <= set(families(text)):
            time.sleep(0.5)
            text = scrape(port)
        yield text
    finally:
        stop_process(demo)


def test_catalogue_tables_are_well_formed() -> None:
    rows = [line for line in CATALOGUE.read_text().splitlines() if ROW.match(line)]
    assert len(rows) >= 20
    for line in rows:
        assert line.count("|") == 7, f"catalogue row needs exactly 6 columns: {line}"


def test_every_exported_metric_is_in_the_catalogue(exposition: str) -> None:
    listed = catalogue()
    exported = families(exposition)
    missing = sorted(n for n in exported if n not in listed)
    assert not missing, f"exported but not in docs/metrics.md: {missing}"
    wrong = sorted(n for n, t in exported.items() if n in listed and listed[n] != t
                   and not (t == "unknown"))
    assert not wrong, f"type differs from docs/metrics.md: {wrong}"


def test_every_catalogued_metric_is_exported(exposition: str) -> None:
    exported = families(exposition)
    never = sorted(n for n in catalogue() if n not in exported and n not in OTEL_ONLY
                   and n not in HOST_DEPENDENT and n not in NOT_IN_DEMO)
    assert not never, f"in docs/metrics.md but never exported by the demo: {never}"
