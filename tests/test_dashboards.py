"""Dashboards as code: committed JSON matches the generator, and every dashboard follows the
conventions (variables, $__rate_interval, datasource, job/instance filters, valid PromQL)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"


def _load_generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("memexport_grafana_generate",
                                                  GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts grafana/ on sys.path for dashboards_src
    return module


generate = _load_generate()
from dashboards_src.queries import (  # noqa: E402  (needs grafana/ on sys.path)
    iter_panels,
    load_dashboards,
    panel_queries,
    substitute,
)

BUILT: dict[str, dict[str, Any]] = generate.build_all()
COMMITTED = load_dashboards()
NAMES = sorted(BUILT)
RATE_FUNCS = re.compile(r"(?<![A-Za-z0-9_:])(rate|irate|increase)\s*\(")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
CATALOGUE = ROOT / "docs" / "metrics.md"
# A catalogue row in docs/metrics.md: | `name` | type | ...
CATALOGUE_ROW = re.compile(
    r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*(gauge|counter|histogram|info)\s*\|")
# Standard prometheus_client series that need no panel: {name: why}.
WITHOUT_PANEL = {
    "python_info": "a constant 1 whose labels carry the Python version: inventory, not a trend",
    "process_cpu_seconds_total": "CPU time, not memory: it belongs on the app's own dashboards",
    "memexport_opentelemetry_export_failures_total": "OpenTelemetry push health, present only "
                                                     "with use_opentelemetry(): not a panel yet",
}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan"}


def _targets(d: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p.get("title", ""), t) for p in iter_panels(d) for t in p.get("targets") or []]


def _call_argument(expr: str, open_paren: int) -> str:
    """The text between the parenthesis at ``open_paren`` and its match."""
    depth = 0
    for i in range(open_paren, len(expr)):
        if expr[i] == "(":
            depth += 1
        elif expr[i] == ")":
            depth -= 1
            if depth == 0:
                return expr[open_paren + 1:i]
    raise AssertionError(f"unbalanced parentheses in {expr!r}")


def _bare_metrics(expr: str) -> list[str]:
    """Metric names used without a ``{...}`` selector (so not filtered by job/instance)."""
    s = STRING.sub('""', expr)
    s = re.sub(r"\{[^}]*\}", "{}", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"(?<![A-Za-z_:])\d+(\.\d+)?([eE][-+]?\d+)?", " ", s)
    bare = []
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        rest = s[m.end():].lstrip()
        if m.group().lower() in KEYWORDS or rest.startswith(("(", "{")):
            continue
        bare.append(m.group())
    return bare


def test_names_are_found() -> None:
    assert "process" in NAMES


def test_committed_json_matches_generator() -> None:
    diff = generate.differences()
    assert not diff, (
        "committed dashboards differ from grafana/dashboards_src: run "
        "`python grafana/generate.py` and commit grafana/dashboards/\n" + "\n".join(diff)
    )
    for name, d in BUILT.items():
        assert COMMITTED[name] == d, f"{name}.json is stale: run `python grafana/generate.py`"


def test_check_mode_reports_a_difference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    for name in NAMES:
        shutil.copy(GRAFANA / "dashboards" / f"{name}.json", tmp_path)
    monkeypatch.setattr(generate, "DASHBOARDS_DIR", tmp_path)
    assert generate.main(["--check"]) == 0
    (tmp_path / "process.json").write_text("{}\n")
    (tmp_path / "old.json").write_text("{}\n")
    assert generate.main(["--check"]) == 1
    out = capsys.readouterr()
    assert "process.json (differs)" in out.out
    assert "old.json (stale" in out.out
    assert "python grafana/generate.py" in out.err
    assert generate.main([]) == 0  # rewrites, removes the stale file
    assert not (tmp_path / "old.json").exists()
    assert generate.main(["--check"]) == 0


def test_check_command_line() -> None:
    r = subprocess.run([sys.executable, str(GRAFANA / "generate.py"), "--check"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_committed_files_are_stable_json() -> None:
    for name in NAMES:
        text = (GRAFANA / "dashboards" / f"{name}.json").read_text()
        assert text.endswith("}\n")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True,
                                  ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name", NAMES)
def test_identity_and_schema(name: str) -> None:
    d = BUILT[name]
    assert d["uid"] == f"memexport-{name}"
    assert d["title"].startswith("memexport / ")
    assert "memexport" in d["tags"]
    assert d["schemaVersion"] >= 41
    assert "id" not in d or d["id"] is None
    ids = [p["id"] for p in iter_panels(d)]
    assert ids == list(range(1, len(ids) + 1))
    titles = [p["title"] for p in iter_panels(d)]
    assert len(titles) == len(set(titles)), f"duplicate panel titles in {name}"


@pytest.mark.parametrize("name", NAMES)
def test_variables(name: str) -> None:
    by_name = {v["name"]: v for v in BUILT[name]["templating"]["list"]}
    ds = by_name["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for var, query in (("job", r"label_values\(\w+, job\)"),
                       ("instance", r'label_values\(\w+\{job=~"\$job"\}, instance\)')):
        v = by_name[var]
        assert v["type"] == "query"
        assert v["multi"] is True and v["includeAll"] is True
        assert re.fullmatch(query, v["query"]), v["query"]
        assert v["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize("name", NAMES)
def test_rates_use_rate_interval(name: str) -> None:
    for title, t in _targets(BUILT[name]):
        expr = t["expr"]
        for m in RATE_FUNCS.finditer(expr):
            arg = _call_argument(expr, m.end() - 1)
            windows = re.findall(r"\[([^\]]*)\]", arg)
            assert windows == ["$__rate_interval"], (
                f"{name} / {title}: {m.group(1)}() must use [$__rate_interval]: {expr}")


@pytest.mark.parametrize("name", NAMES)
def test_datasource_everywhere(name: str) -> None:
    for p in iter_panels(BUILT[name]):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p.get("targets"), f"{name} / {p['title']} has no targets"
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]


@pytest.mark.parametrize("name", NAMES)
def test_every_selector_filters_by_job_and_instance(name: str) -> None:
    for title, t in _targets(BUILT[name]):
        expr = t["expr"]
        selectors = re.findall(r"\{([^}]*)\}", STRING.sub(lambda m: m.group().replace(
            "{", "(").replace("}", ")"), expr))
        assert selectors, f"{name} / {title}: no selector in {expr}"
        for s in selectors:
            assert 'job=~"$job"' in s and 'instance=~"$instance"' in s, (
                f"{name} / {title}: selector {{{s}}} not filtered by job and instance")
        assert not _bare_metrics(expr), (
            f"{name} / {title}: metrics without a selector {_bare_metrics(expr)}: {expr}")


@pytest.mark.parametrize("name", NAMES)
def test_panel_queries(name: str) -> None:
    d = COMMITTED[name]
    queries = panel_queries(d)
    with_targets = {p["title"] for p in iter_panels(d) if p.get("targets")}
    assert {title for title, _ in queries} == with_targets
    for title, expr in queries:
        assert expr.strip(), title
        assert "$" not in expr and "[[" not in expr, f"{title}: unsubstituted {expr}"
    assert len(queries) == len(_targets(d))


def test_every_catalogued_metric_is_on_a_panel() -> None:
    """Every metric of docs/metrics.md is queried by some panel (histograms by a series of
    theirs: _bucket, _sum or _count), except the few in WITHOUT_PANEL."""
    catalogue = {m.group(1): m.group(2) for line in CATALOGUE.read_text().splitlines()
                 if (m := CATALOGUE_ROW.match(line))}
    assert len(catalogue) > 20, f"few rows parsed from {CATALOGUE}"
    used = {name for d in BUILT.values() for _, t in _targets(d)
            for name in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", STRING.sub('""', t["expr"]))}

    def on_a_panel(name: str) -> bool:
        series = {name}
        if catalogue[name] == "histogram":
            series |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        return bool(series & used)

    missing = sorted(n for n in catalogue if n not in WITHOUT_PANEL and not on_a_panel(n))
    assert not missing, f"catalogued metrics on no dashboard panel: {missing}"
    stale = sorted(n for n in WITHOUT_PANEL if n not in catalogue or on_a_panel(n))
    assert not stale, f"WITHOUT_PANEL entries not catalogued or already on a panel: {stale}"


def test_promql_parses_with_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (Debian package prometheus)"
    rules = [{"record": f"memexport:dashboard_query_{i}", "expr": expr}
             for i, (_, expr) in enumerate(
                 q for name in NAMES for q in panel_queries(COMMITTED[name]))]
    path = tmp_path / "queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    r = subprocess.run([promtool, "check", "rules", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_substitute() -> None:
    expr = ('rate(x{job=~"$job", instance=~"${instance}", cache=~"[[cache]]", '
            'pool=~"${pool:regex}"}[$__rate_interval]) + y[${__interval}] + $__range_s')
    assert substitute(expr) == (
        'rate(x{job=~".+", instance=~".+", cache=~".+", pool=~".+"}[1m]) + y[30s] + 300')
    assert substitute("z[$__range]", range_="1h") == "z[1h]"
    assert substitute("z[$__rate_interval]", rate_interval="2m") == "z[2m]"
    with pytest.raises(ValueError, match="__bogus"):
        substitute("z[$__bogus]")


def test_provisioning() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/memexport.yml").read_text())
    assert ds["apiVersion"] == 1
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus"
    for name in NAMES:
        var = next(v for v in BUILT[name]["templating"]["list"] if v["name"] == "datasource")
        assert var["current"]["value"] == source["uid"], name
    dash = yaml.safe_load((GRAFANA / "provisioning/dashboards/memexport.yml").read_text())
    assert dash["apiVersion"] == 1
    (provider,) = dash["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] in (GRAFANA / "README.md").read_text()
