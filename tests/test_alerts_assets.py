"""The alert config and rule generator (memexport.assets): settings, errors, the YAML writer,
``memexport assets``, and that a tuned copy really changes what fires."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, require_binary

from memexport.assets import Config, ConfigError, load_config, render_rules
from memexport.assets.config import format_duration, parse_duration
from memexport.assets.loading import changed_settings, describe
from memexport.assets.render import dump


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memexport.cli", "assets", *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400
    assert format_duration(5400) == "1h30m"
    assert format_duration(0.5) == "500ms"
    with pytest.raises(ConfigError, match=r"process\.trend_window.*'20'"):
        load_config(overrides=["process.trend_window=20"])


def test_bad_keys_and_values_are_named() -> None:
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        load_config(overrides=["process.nope=1"])
    with pytest.raises(ConfigError, match="near_limit_warning: a ratio must be <= 1"):
        load_config(overrides=["process.near_limit_warning=80"])
    with pytest.raises(ConfigError, match="expected a list of label names"):
        load_config(overrides=['target_labels=["job", "bad-label"]'])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(overrides=["process"])


def test_file_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "mine.yml"
    f.write_text("process:\n  time_to_limit_critical: 3h\npools.held_on_purpose: pubsub|listen\n")
    cfg = load_config(f, ["process.near_limit_critical=0.92"])
    assert cfg.process.time_to_limit_critical == "3h"
    assert cfg.process.near_limit_critical == 0.92
    assert cfg.pools.held_on_purpose == "pubsub|listen"
    assert sorted(changed_settings(cfg)) == ['pools.held_on_purpose="pubsub|listen"',
                                             "process.near_limit_critical=0.92",
                                             'process.time_to_limit_critical="3h"']
    j = tmp_path / "mine.json"
    j.write_text(json.dumps({"caches": {"thrashing_hit_ratio": 0.4}}))
    assert load_config(j).caches.thrashing_hit_ratio == 0.4


def test_printed_config_reads_back_as_the_defaults(tmp_path: Path) -> None:
    res = run_cli("config")
    assert res.returncode == 0, res.stderr
    (tmp_path / "all.yml").write_text(res.stdout)
    assert load_config(tmp_path / "all.yml") == Config()
    keys = {k for k, _, _ in describe()}
    assert {"process.time_to_limit_critical", "pools.held_on_purpose", "dashboard_url"} <= keys


def test_writer_round_trips_through_yaml() -> None:
    data = {"groups": [{"name": "g", "rules": [{"#": "a comment", "record": "a:b:c",
                                                "expr": "sum by (job) (x)\n  > 1\n"},
                                               {"alert": "A", "expr": 'x{a="b"} > 1',
                                                "for": "5m", "labels": {"severity": "warning"},
                                                "annotations": {"description": "y " * 80}}]}]}
    text = dump(data, "header")
    assert text.startswith("# header\n") and "# a comment" in text
    loaded = yaml.safe_load(text)
    rules = loaded["groups"][0]["rules"]
    assert rules[0] == {"record": "a:b:c", "expr": "sum by (job) (x)\n  > 1\n"}
    assert rules[1]["annotations"]["description"] == "y " * 80
    assert rules[1]["expr"] == 'x{a="b"} > 1' and rules[1]["for"] == "5m"


def test_rendered_rules_parse_and_keep_their_labels() -> None:
    for name, text in render_rules().items():
        doc = yaml.safe_load(text)
        for group in doc["groups"]:
            assert group["name"].startswith("memexport-"), name
            for rule in group["rules"]:
                if "alert" in rule:
                    assert "by (job, instance" in rule["expr"] or "up" in rule["expr"] or \
                        "on (job, instance" in rule["expr"] or ":" in rule["expr"], rule["alert"]


def test_target_labels_selector_and_time_scale() -> None:
    cfg = load_config(overrides=['target_labels=["namespace", "pod"]', 'selector=env="prod"',
                                 "time_scale=0.5"])
    text = render_rules(cfg)["process.rules.yml"]
    assert "by (namespace, pod)" in text and "by (job, instance)" not in text
    assert 'process_resident_memory_bytes{env="prod"}' in text
    assert "max_over_time(instance:memexport_process_resident_memory_bytes:sum[7m30s])" in text
    assert "{{ $labels.namespace }}/{{ $labels.pod }}" in text
    assert "Settings changed from the defaults" in text


def test_cli_writes_a_tuned_copy_and_checks_it(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    cfg = tmp_path / "mine.yml"
    cfg.write_text("process:\n  near_limit_critical: 0.85\n")
    out = tmp_path / "rules"
    res = run_cli("rules", "--config", str(cfg), "--out", str(out))
    assert res.returncode == 0, res.stderr
    files = sorted(out.glob("*.rules.yml"))
    assert [p.name for p in files] == sorted(render_rules())
    assert "instance:memexport_process_memory_usage:ratio > 0.85" in (
        out / "process.rules.yml").read_text()
    check = subprocess.run([promtool, "check", "rules", *map(str, files)], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert run_cli("rules", "--config", str(cfg), "--check", str(out)).returncode == 0
    stale = run_cli("rules", "--check", str(out))
    assert stale.returncode == 1 and "process.rules.yml (differs)" in stale.stdout
    assert run_cli("rules", "--set", "nope=1", "--out", str(out)).returncode == 2


HELD = """
rule_files: [pools.rules.yml]
evaluation_interval: 1m
group_eval_order: [memexport-pools.rules, memexport-pools.alerts]
tests:
  - interval: 1m
    input_series:
      - series: 'memexport_pool_resources{job="a",instance="i",pool="pubsub",state="in_use"}'
        values: '1+0x90'
      - series: 'memexport_pool_oldest_use_seconds{job="a",instance="i",pool="pubsub"}'
        values: '0.2+0x19 0+60x70'
      - series: 'process_start_time_seconds{job="a",instance="i"}'
        values: '-86400+0x90'
    alert_rule_test:
      - eval_time: 80m
        alertname: MemexportPoolResourceHeldTooLong
        exp_alerts: EXPECTED
"""


@pytest.mark.parametrize("held", ["", "pubsub|listen"])
def test_pools_held_on_purpose(tmp_path: Path, held: str) -> None:
    """A subscription taken at 20m and kept: held too long, unless its pool is named."""
    promtool = require_binary("promtool")
    cfg = load_config(overrides=[f"pools.held_on_purpose={held}"])
    (tmp_path / "pools.rules.yml").write_text(render_rules(cfg)["pools.rules.yml"])
    expected = "[]" if held else "[{exp_labels: {severity: warning, pool: pubsub}}]"
    (tmp_path / "t.yml").write_text(HELD.replace("EXPECTED", expected))
    res = subprocess.run([promtool, "test", "rules", "t.yml"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    got = res.stdout + res.stderr
    if held:
        assert res.returncode == 0, got
    else:  # fires; its annotations are checked in alerts/tests/pools.test.yml
        assert 'alertname="MemexportPoolResourceHeldTooLong"' in got and "got:[]" not in got


def test_counters_the_rules_increase_exist_at_zero_from_the_start() -> None:
    """increase() misses a counter's first event if the series appears with it: memexport
    exports its error and overflow counters at 0 from the start (the cleanup failures, one
    series per exception type, are added up from 0 by a recording rule instead)."""
    from memexport.core.registry import Registry
    from memexport.kinds.cleanup import cleanup

    reg = Registry()
    cleanup(lambda: None, name="trim", period=60, registry=reg)
    samples = {(f.name, tuple(sorted(labels.items()))): value
               for f in reg.collect() for labels, value in f.samples}
    assert samples[("memexport_collector_errors_total", (("collector", "registry"),))] == 0
    assert samples[("memexport_collector_errors_total", (("collector", "cleanup"),))] == 0
    assert samples[("memexport_series_overflow_total", (("kind", "cleanup"),))] == 0
    assert samples[("memexport_cleanup_runs_total", (("cleanup", "trim"),))] == 0
    rule = render_rules()["agents.rules.yml"]
    assert "or on (job, instance, cleanup)\n          0 * max by (job, instance, cleanup) " \
           "(memexport_cleanup_runs_total" in rule


HANDWRITTEN = """\
groups:
  - name: memexport-actions.alerts
    rules:
      - alert: MemexportActionFailing
        expr: increase(memexport_action_failures_total[10m]) > 0
        annotations:
          runbook_url: https://github.com/memexport/memexport/blob/main/alerts/runbook.md#memexportactionfailing
          dashboard_url: http://localhost:3000/d/memexport-process?var-job={{ $labels.job }}
"""


def test_handwritten_rule_files_follow_the_config(tmp_path: Path) -> None:
    """A rule file kept by hand is shipped as it is, its links and group names following the
    user's config; the package ships none yet (nothing stale in alerts/)."""
    from memexport.assets.rules.common import Q
    from memexport.assets.rules.handwritten import render_handwritten

    (tmp_path / "actions.rules.yml").write_text(HANDWRITTEN)
    (tmp_path / "README.md").write_text("not a rule file")
    assert render_handwritten(Q(Config()), tmp_path) == {"actions.rules.yml": HANDWRITTEN}
    cfg = load_config(overrides=["runbook_url=https://wiki.example/{alertname}",
                                 "grafana_url=https://grafana.example/",
                                 "dashboards.process=proc", "group_prefix=acme"])
    text = render_handwritten(Q(cfg), tmp_path)["actions.rules.yml"]
    assert "runbook_url: https://wiki.example/MemexportActionFailing\n" in text
    assert "dashboard_url: https://grafana.example/d/proc?var-job=" in text
    assert "- name: acme-actions.alerts" in text
    assert yaml.safe_load(text)["groups"][0]["rules"][0]["expr"] == yaml.safe_load(
        HANDWRITTEN)["groups"][0]["rules"][0]["expr"]
    shipped = render_handwritten(Q(Config()))
    assert set(shipped) <= set(render_rules()), shipped


# -- the whole layout: memexport assets --out DIR ---------------------------------------------


def test_committed_assets_match_the_generator() -> None:
    """Every generated file the repository commits (alerts/, grafana/, deploy/kubernetes/) is
    what the default config generates: `python tools/assets.py` rewrites them."""
    res = subprocess.run([sys.executable, "tools/assets.py", "--check"], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, "run `python tools/assets.py`:\n" + res.stdout + res.stderr


LAYOUT = ["README.md", "alertmanager.yml", "prometheusrule.yaml",
          "provisioning/dashboards/memexport.yml", "provisioning/datasources/memexport.yml",
          "runbook.md", "alertmanager-actions.yml",
          *(f"dashboards/{n}.json" for n in ("agents", "caches", "memory", "pools", "process")),
          *(f"rules/{n}.rules.yml" for n in ("actions", "agents", "caches", "memory", "pools",
                                             "process", "tasks"))]


def test_assets_out_writes_everything_with_the_users_settings(tmp_path: Path) -> None:
    promtool, amtool = require_binary("promtool"), require_binary("amtool")
    cfg = tmp_path / "mine.yml"
    cfg.write_text("runbook_url: https://wiki.example/memexport#{anchor}\n"
                   "alertmanager:\n  page_url: https://pager.example/hook\n"
                   "grafana:\n  prometheus_url: http://prometheus:9090\n")
    out = tmp_path / "assets"
    res = run_cli("--config", str(cfg), "--set", "grafana.datasource_uid=prom-main",
                  "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        sorted(LAYOUT)
    rules = sorted(str(p) for p in (out / "rules").glob("*.rules.yml"))
    check = subprocess.run([promtool, "check", "rules", *rules], capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    am = subprocess.run([amtool, "check-config", str(out / "alertmanager.yml")],
                        capture_output=True, text=True, timeout=60)
    assert am.returncode == 0, am.stdout + am.stderr
    assert "url: https://pager.example/hook\n" in (out / "alertmanager.yml").read_text()
    for rule in (r for f in rules for g in yaml.safe_load(Path(f).read_text())["groups"]
                 for r in g["rules"] if "alert" in r):
        assert rule["annotations"]["runbook_url"] == (
            f"https://wiki.example/memexport#{rule['alert'].lower()}")
    for d in (out / "dashboards").glob("*.json"):
        var = next(v for v in json.loads(d.read_text())["templating"]["list"]
                   if v["name"] == "datasource")
        assert var["current"]["value"] == "prom-main", d.name
    (source,) = yaml.safe_load((out / "provisioning/datasources/memexport.yml").read_text())[
        "datasources"]
    assert (source["uid"], source["url"]) == ("prom-main", "http://prometheus:9090")
    (provider,) = yaml.safe_load((out / "provisioning/dashboards/memexport.yml").read_text())[
        "providers"]
    assert provider["options"]["path"] == str((out / "dashboards").resolve())
    kube = yaml.safe_load((out / "prometheusrule.yaml").read_text())
    assert kube["kind"] == "PrometheusRule" and len(kube["spec"]["groups"]) == 13
    # --check: up to date with the same settings; not with others; a stale rule file shows
    same = ("--config", str(cfg), "--set", "grafana.datasource_uid=prom-main")
    assert run_cli(*same, "--check", str(out)).returncode == 0
    (out / "rules" / "old.rules.yml").write_text("groups: []\n")
    stale = run_cli(*same, "--check", str(out))
    assert stale.returncode == 1 and "rules/old.rules.yml (stale" in stale.stdout
    other = run_cli("--check", str(out))
    assert other.returncode == 1 and "rules/process.rules.yml (differs)" in other.stdout
    assert run_cli("--set", "nope=1", "--out", str(out)).returncode == 2
    assert run_cli().returncode == 2  # neither --out, --check nor a command


def test_a_tuned_alertmanager_routes_and_inhibits_on_the_target_labels(tmp_path: Path) -> None:
    from memexport.assets.alertmanager import render_alertmanager

    amtool = require_binary("amtool")
    cfg = load_config(overrides=['target_labels=["namespace", "pod"]',
                                 'alertmanager.group_by=["alertname", "namespace"]',
                                 "alertmanager.ticket_url=https://tickets.example/in?q=1"])
    path = tmp_path / "alertmanager.yml"
    path.write_text(render_alertmanager(cfg))
    doc = yaml.safe_load(path.read_text())
    assert doc["route"]["group_by"] == ["alertname", "namespace"]
    assert doc["inhibit_rules"][0]["equal"] == ["alertname", "namespace", "pod"]
    assert doc["receivers"][1]["webhook_configs"][0]["url"] == "https://tickets.example/in?q=1"
    res = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    routes = subprocess.run([amtool, "config", "routes", "test", f"--config.file={path}",
                             "severity=critical", "namespace=a", "pod=p"],
                            capture_output=True, text=True, timeout=60)
    assert routes.stdout.strip() == "page", routes.stdout + routes.stderr


def test_the_library_never_imports_the_assets() -> None:
    """memexport.assets may read the kinds' tables; no runtime module imports it back (the
    `memexport` command loads it only for `memexport assets`)."""
    src = ROOT / "src" / "memexport"
    offenders = [p.relative_to(src).as_posix() for p in sorted(src.rglob("*.py"))
                 if "assets" not in p.relative_to(src).parts and p.name != "cli.py"
                 and "memexport.assets" in p.read_text()]
    assert not offenders, offenders
    cli = (src / "cli.py").read_text()
    assert "\nfrom memexport.assets" not in cli and "\nimport memexport.assets" not in cli
