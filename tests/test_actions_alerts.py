"""The Alertmanager example for actions, checked with the real amtool: it is valid, and the
memory alerts reach both the process's webhook and on-call while the others reach on-call only.

(``alerts/actions.rules.yml`` and its promtool cases are checked with every rule file by
tests/test_alerts.py.)"""

from __future__ import annotations

import subprocess

import pytest
import yaml
from conftest import ROOT, require_binary

CONFIG = ROOT / "alerts" / "alertmanager-actions.yml"


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_binary("amtool"), *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_amtool_check_config() -> None:
    res = _amtool("check-config", str(CONFIG))
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr


@pytest.mark.parametrize(("labels", "receivers"), [
    ({"alertname": "MemexportProcessMemoryNearLimit", "severity": "critical"},
     ["process-actions", "page"]),
    ({"alertname": "MemexportProcessMemoryNearLimit", "severity": "warning"},
     ["process-actions", "ticket"]),
    ({"alertname": "MemexportCacheGrowingUnbounded", "severity": "warning"},
     ["process-actions", "ticket"]),
    ({"alertname": "MemexportCacheThrashing", "severity": "warning"}, ["ticket"]),
    ({"alertname": "MemexportActionFailing", "severity": "warning"}, ["ticket"]),
    ({"alertname": "MemexportPoolExhausted", "severity": "critical"}, ["page"]),
    ({"alertname": "SomethingElse", "severity": "info"}, ["null"]),
])
def test_routes(labels: dict[str, str], receivers: list[str]) -> None:
    res = _amtool("config", "routes", "test", f"--config.file={CONFIG}",
                  *(f"{k}={v}" for k, v in labels.items()))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().split(",") == receivers


def test_the_webhook_sends_resolved_and_a_token() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    (receiver,) = [r for r in config["receivers"] if r["name"] == "process-actions"]
    (hook,) = receiver["webhook_configs"]
    assert hook["send_resolved"] is True
    assert hook["url"].endswith("/actions/webhook")
    assert hook["http_config"]["authorization"]["type"] == "Bearer"
    assert hook["max_alerts"] <= 1000  # the receiver refuses more
    first = config["route"]["routes"][0]
    assert first["receiver"] == "process-actions" and first["continue"] is True
