"""Dashboards as code: committed JSON matches the generator, and every dashboard follows the
conventions (variables, $__rate_interval, datasource, job/instance filters, valid PromQL)."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from memexport.assets.config import Config
from memexport.assets.dashboards import (
    DashboardsUnavailable,
    build_dashboards,
    render_dashboards,
)
from memexport.assets.dashboards.queries import (
    iter_panels,
    load_dashboards,
    panel_queries,
    substitute,
)
from memexport.assets.files import differences
from memexport.assets.loading import load_config

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
COMMITTED_DIR = GRAFANA / "dashboards"

BUILT: dict[str, dict[str, Any]] = build_dashboards()
COMMITTED = load_dashboards(COMMITTED_DIR)
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
    diff = differences(COMMITTED_DIR, render_dashboards(), ("*.json",))
    assert not diff, (
        "committed dashboards differ from src/memexport/assets/dashboards: run "
        "`python grafana/generate.py` and commit grafana/dashboards/\n" + "\n".join(diff))
    for name, d in BUILT.items():
        assert COMMITTED[name] == d, f"{name}.json is stale: run `python grafana/generate.py`"


def test_check_mode_reports_a_difference(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from memexport.assets.cli import main

    for name in NAMES:
        shutil.copy(COMMITTED_DIR / f"{name}.json", tmp_path)
    assert main(["dashboards", "--check", str(tmp_path)]) == 0
    (tmp_path / "process.json").write_text("{}\n")
    (tmp_path / "old.json").write_text("{}\n")
    assert main(["dashboards", "--check", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert "process.json (differs)" in out.out
    assert "old.json (stale" in out.out
    assert "memexport assets dashboards --out" in out.err
    assert main(["dashboards", "--out", str(tmp_path)]) == 0  # rewrites; never deletes
    assert (tmp_path / "old.json").exists()
    (tmp_path / "old.json").unlink()
    assert main(["dashboards", "--check", str(tmp_path)]) == 0


def test_check_command_line() -> None:
    r = subprocess.run([sys.executable, str(GRAFANA / "generate.py"), "--check"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_committed_files_are_stable_json() -> None:
    for name in NAMES:
        text = (COMMITTED_DIR / f"{name}.json").read_text()
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


# -- the same config as the rules ------------------------------------------------------------

TUNED = ['target_labels=["namespace", "pod"]', "labels.cache=memo", "labels.cleanup=job_name",
         'selector=env="prod"', "dashboards.caches=my-caches", "dashboards.agents=my-agents",
         "grafana.datasource_uid=prom-main", "grafana.datasource_name=Main"]


def _variables(d: dict[str, Any]) -> set[str]:
    return {v["name"] for v in d["templating"]["list"]}


def test_a_tuned_config_changes_every_selector_label_and_uid() -> None:
    built = build_dashboards(load_config(overrides=TUNED))
    assert built["caches"]["uid"] == "my-caches" and built["process"]["uid"] == "memexport-process"
    for name, d in built.items():
        assert {"datasource", "namespace", "pod"} <= _variables(d), name
        assert not {"job", "instance"} & _variables(d), name
        ds = next(v for v in d["templating"]["list"] if v["name"] == "datasource")
        assert ds["current"] == {"selected": True, "text": "Main", "value": "prom-main"}
        for title, t in _targets(d):
            expr = STRING.sub(lambda m: m.group().replace("{", "(").replace("}", ")"), t["expr"])
            for s in re.findall(r"\{([^}]*)\}", expr):
                assert all(m in s for m in ('namespace=~"$namespace"', 'pod=~"$pod"',
                                            'env="prod"')), f"{name} / {title}: {{{s}}}"
            assert not re.search(r"\b(job|instance)\b", STRING.sub('""', t["expr"])), (
                name, title, t["expr"])
            assert "{{instance}}" not in t.get("legendFormat", ""), (name, title)
    caches = built["caches"]
    assert "memo" in _variables(caches) and "cache" not in _variables(caches)
    assert any('memo=~"$memo"' in t["expr"] and "{{memo}}" in t["legendFormat"]
               for _, t in _targets(caches))
    assert "job_name" in _variables(built["agents"])
    links = built["process"]["links"]
    assert any(link.get("url") == "/d/memexport-memory" for link in links)


@pytest.mark.parametrize("overrides", [[], TUNED], ids=["default", "tuned"])
def test_every_alert_opens_a_dashboard_with_its_variables(overrides: list[str]) -> None:
    """An alert's dashboard_url names a dashboard uid that exists and only variables it has."""
    from memexport.assets.generate import render_rules

    cfg = load_config(overrides=overrides)
    by_uid = {d["uid"]: d for d in build_dashboards(cfg).values()}
    checked = 0
    for text in render_rules(cfg).values():
        for group in yaml.safe_load(text)["groups"]:
            for rule in group["rules"]:
                url = (rule.get("annotations") or {}).get("dashboard_url")
                if not url:
                    continue
                m = re.fullmatch(r"http://localhost:3000/d/([^?]+)\?(.*)", url)
                assert m, url
                uid, query = m.groups()
                assert uid in by_uid, (rule["alert"], uid)
                names = set(re.findall(r"var-([A-Za-z_][A-Za-z0-9_]*)=", query))
                assert names and names <= _variables(by_uid[uid]), (rule["alert"], names)
                checked += 1
    assert checked > 40


def _constants(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text())
    return {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
            for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)
            and isinstance(n.value.value, str)}


def test_adapter_metric_names_are_the_adapters() -> None:
    """Written out in names.ADAPTER (importing an adapter extends its kind): still theirs."""
    from memexport.assets.dashboards.names import ADAPTER

    src = ROOT / "src" / "memexport" / "integrations"
    httpx, agents, langgraph = (_constants(src / f"{m}.py")
                                for m in ("httpx", "openai_agents", "langgraph"))
    assert ADAPTER.POOL_EXPIRED == httpx["EXPIRED"]
    assert (ADAPTER.AGENT_RUNS, ADAPTER.AGENT_RUNS_ACTIVE, ADAPTER.AGENT_RUN_FAILURES) == (
        agents["RUNS"], agents["ACTIVE"], agents["FAILURES"])
    assert (ADAPTER.CHECKPOINTS, ADAPTER.CHECKPOINT_WRITES, ADAPTER.THREADS) == (
        langgraph["CHECKPOINTS"], langgraph["WRITES"], langgraph["THREADS"])


def test_panels_carry_the_help_of_the_kind_metrics_they_show() -> None:
    from memexport.kinds.cache.table import ITEMS, KIND

    panel = next(p for p in iter_panels(BUILT["caches"]) if p["title"] == "Items vs capacity")
    assert f"- `{ITEMS}`: {KIND.by_name[ITEMS].help}" in panel["description"]


def test_without_the_sdk_the_shipped_dashboards_serve_the_default_view(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No grafana-foundation-sdk: defaults (and settings the dashboards do not read) get the
    shipped JSON; a dashboard-affecting setting is an error naming it and the extra."""
    import memexport.assets.dashboards as dashboards

    monkeypatch.setattr(dashboards, "sdk_installed", lambda: False)
    shipped = render_dashboards(load_config(overrides=["runbook_url=https://x/{anchor}",
                                                       "process.trend_window=20m"]))
    assert shipped == {p.name: p.read_text() for p in sorted(COMMITTED_DIR.glob("*.json"))}
    with pytest.raises(DashboardsUnavailable, match=r"target_labels, labels\.cache.*"
                       r"memexport\[dashboards\]"):
        render_dashboards(load_config(overrides=TUNED))
    assert Config() == load_config()


def test_no_interval_settings_on_query_variables_and_table_footers_in_field_config() -> None:
    for name, d in BUILT.items():
        for v in d["templating"]["list"]:
            assert v["type"] == "interval" or not {"auto", "auto_min", "auto_count"} & set(v)
        for p in iter_panels(d):
            if p["type"] == "table":
                assert "footer" not in p["options"], (name, p["title"])
                assert p["fieldConfig"]["defaults"]["custom"]["footer"] == {"reducers": []}
