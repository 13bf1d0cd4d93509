"""The bench's scrape comparison runs on equal output through the serving path: memexport's
``/metrics`` app and HTTP server against prometheus_client serving the same families through a
custom collector, every format byte for byte (but memexport's own last read time). No timing
is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from memexport.bench.scrape import VOLATILE, same_output
from memexport.bench.scrapeworker import FORMATS


def _side(tmp: Path, side: str, mirror_of: Path | None = None) -> dict[str, str]:
    out = tmp / f"{side}.json"
    spec = {"side": side, "n": 20, "rounds": 1, "out": str(out)}
    if mirror_of is not None:
        spec["mirror_of"] = str(mirror_of)
    res = subprocess.run([sys.executable, "-m", "memexport.bench.scrapeworker",
                          json.dumps(spec)], capture_output=True, text=True, timeout=300,
                         check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert all(isinstance(v, int) and v > 0 for v in report["gc_on"] + report["http"])
    bodies: dict[str, str] = json.loads(out.read_text(encoding="utf-8"))
    return bodies


def test_both_sides_serve_the_same_exposition_in_every_format(tmp_path: Path) -> None:
    ours = _side(tmp_path, "memexport")
    theirs = _side(tmp_path, "prometheus_client", mirror_of=tmp_path / "memexport.json")
    assert set(ours) == set(theirs) == {*FORMATS, "http"}
    assert 'memexport_cache_items{cache="cache19"}' in ours["text"]
    assert ours["openmetrics"].endswith("# EOF\n") and "# UNIT " in ours["openmetrics"]
    for fmt in ours:
        verdict = same_output(ours[fmt], theirs[fmt])
        assert verdict.startswith("same sample lines, byte for byte"), (fmt, verdict)
    # The HTTP server answers Prometheus' Accept header with what the app answers.
    assert same_output(ours["http"], ours["openmetrics"]).startswith(
        "same sample lines, byte for byte")


def test_same_output_says_how_equal() -> None:
    text = "# TYPE a gauge\na 1.0\n"
    assert same_output(text, text) == "same sample lines, byte for byte"
    timed = f"{VOLATILE} 0.5\n"
    assert same_output(text + timed, text + f"{VOLATILE} 0.25\n").endswith("own last read time")
    assert same_output(text, "# TYPE a gauge\na 2.0\n") == "same sample lines, values differ"
    assert same_output(text, "# TYPE b gauge\nb 1.0\n") == "SAMPLE LINES DIFFER"
