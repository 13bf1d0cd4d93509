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
