"""Every promtool case of alerts/tests/, again in every documented deployment mode.

The input series of each case are reshaped (alerts/scenarios/modes.py): multiprocess
(per-worker process series with a ``pid`` label), both exporters in one process (every series
twice, with OpenTelemetry label names or a ``source`` label). The expected alerts stay the same,
labels and annotations included, and promtool fails the file if any rule fails to evaluate.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, require_binary

sys.path.insert(0, str(ROOT / "alerts" / "scenarios"))
from modes import MODES, expand, transform_tests

TESTS = sorted((ROOT / "alerts" / "tests").glob("*.test.yml"))
CASES = [(t, m) for t in TESTS for m in MODES if m != "single"]


@pytest.mark.parametrize(("test_file", "mode"), CASES,
                         ids=[f"{t.stem}-{m}" for t, m in CASES])
def test_promtool_cases_in_every_mode(test_file: Path, mode: str, tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    doc = transform_tests(yaml.safe_load(test_file.read_text()), mode)
    doc["rule_files"] = [str((test_file.parent / r).resolve()) for r in doc["rule_files"]]
    out = tmp_path / f"{test_file.stem}.{mode}.yml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = subprocess.run([promtool, "test", "rules", str(out)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]


def test_modes_reshape_the_series() -> None:
    doc = {"tests": [{"input_series": [
        {"series": 'process_resident_memory_bytes{job="a",instance="i"}', "values": "100+100x2"},
        {"series": 'memexport_cache_items{job="a",instance="i",cache="c"}', "values": "5 _ 7"},
    ]}]}
    multi = transform_tests(doc, "multiprocess")["tests"][0]["input_series"]
    rss = [s for s in multi if s["series"].startswith("process_resident")]
    assert len(rss) == 2 and all('pid="' in s["series"] for s in rss)
    assert [expand(s["values"]) for s in rss] == [[50.0, 100.0, 150.0]] * 2
    otel = transform_tests(doc, "dual-otel")["tests"][0]["input_series"]
    assert any('memexport_cache_name="c"' in s["series"] for s in otel)
    source = transform_tests(doc, "dual-source")["tests"][0]["input_series"]
    assert sum('source="opentelemetry"' in s["series"] for s in source) == 2


def test_expand_matches_promtool_notation() -> None:
    assert expand("1+2x3 _x2 stale 4-1x2 7") == [1, 3, 5, 7, None, None, None, 4, 3, 2, 7]
