"""Alert rules, their unit tests, the runbook and the Alertmanager example, checked with the
real tools (promtool, amtool, Alertmanager).

Every ``alerts/*.rules.yml`` and ``alerts/tests/*.test.yml`` is picked up, so rule files added
for new areas are held to the same conventions without touching this module.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from conftest import free_port, require_binary, stop_process, wait_http

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "alerts"
RULE_FILES = sorted(ALERTS.glob("*.rules.yml"))
TEST_FILES = sorted((ALERTS / "tests").glob("*.test.yml"))
RUNBOOK = ALERTS / "runbook.md"
AM_CONFIG = ALERTS / "alertmanager.yml"
ROUTE_CASES = ALERTS / "tests" / "alertmanager-routes.yml"

CATALOGUE = ROOT / "docs" / "metrics.md"
# A catalogue row in docs/metrics.md: | `name` | type | ...
CATALOGUE_ROW = re.compile(
    r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*(gauge|counter|histogram|info)\s*\|")
BUDGET_METRIC = re.compile(r"memexport_[a-z0-9_]+_budget_bytes")

RUNBOOK_URL = "https://github.com/memexport/memexport/blob/main/alerts/runbook.md#"
ALERT_NAME = re.compile(r"Memexport(?:[A-Z][a-z0-9]*)+")
RECORD_NAME = re.compile(r"[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*")
SEVERITIES = {"critical", "warning", "info"}
#: The Grafana dashboard each rule file's alerts link to (the dashboards' UIDs); a rule file
#: not listed (a hand-written one) may link to any of them.
DASHBOARD_UIDS = {"process": "memexport-process", "caches": "memexport-caches",
                  "pools": "memexport-pools", "agents": "memexport-agents",
                  "memory": "memexport-memory", "tasks": "memexport-agents"}

T = TypeVar("T")


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT)


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _rules(path: Path) -> Iterator[dict[str, Any]]:
    for group in _load(path).get("groups") or []:
        yield from group.get("rules") or []


def _alerts() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, r) for p in RULE_FILES for r in _rules(p) if "alert" in r]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, - for spaces."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_for(rules: Path) -> Path:
    """The runbook of a rule file: ``runbook-<area>.md`` beside it if there is one (new areas
    not yet folded into runbook.md), else ``runbook.md``."""
    own = rules.parent / f"runbook-{rules.name.removesuffix('.rules.yml')}.md"
    return own if own.exists() else RUNBOOK


def runbook_anchors(runbook: Path = RUNBOOK) -> set[str]:
    anchors: set[str] = set()
    in_fence = False
    for line in runbook.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and (m := re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)):
            anchors.add(github_anchor(m.group(1)))
    return anchors


def poll(check: Callable[[], T], deadline_s: float = 30.0, every: float = 0.2) -> T:
    """Call ``check`` until it returns a truthy value or the deadline passes; return the last."""
    end = time.monotonic() + deadline_s
    while True:
        result = check()
        if result or time.monotonic() >= end:
            return result
        time.sleep(every)


# -- promtool ------------------------------------------------------------------------------


def test_rule_and_test_files_exist() -> None:
    assert RULE_FILES, f"no *.rules.yml in {ALERTS}"
    assert TEST_FILES, f"no *.test.yml in {ALERTS / 'tests'}"


def test_committed_rules_match_the_generator() -> None:
    """alerts/*.rules.yml are generated from memexport.assets' default config (drift test)."""
    from memexport.assets.generate import differences, render_rules

    diff = differences(ALERTS, render_rules())
    assert not diff, ("alerts/ differs from the generator; run "
                      "`memexport assets rules --out alerts`: " + ", ".join(diff))


def test_dashboard_uids_are_the_dashboards() -> None:
    dashboards = (ROOT / "grafana" / "dashboards").glob("*.json")
    uids = {json.loads(p.read_text())["uid"] for p in dashboards}
    assert set(DASHBOARD_UIDS.values()) <= uids, uids


@pytest.mark.parametrize("rules", RULE_FILES, ids=_ids(RULE_FILES))
def test_promtool_check_rules(rules: Path) -> None:
    promtool = require_binary("promtool")
    res = _run([promtool, "check", "rules", str(rules)])
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("tests", TEST_FILES, ids=_ids(TEST_FILES))
def test_promtool_test_rules(tests: Path) -> None:
    promtool = require_binary("promtool")
    res = _run([promtool, "test", "rules", str(tests)])
    assert res.returncode == 0, res.stdout + res.stderr


# -- conventions ---------------------------------------------------------------------------


def test_alert_conventions() -> None:
    """Names, severity, annotations and runbook links of every alert follow the conventions."""
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for path, rule in _alerts():
        runbook = runbook_for(path)
        anchors = runbook_anchors(runbook)
        base_url = RUNBOOK_URL.replace(RUNBOOK.name, runbook.name)
        name = rule["alert"]
        where = f"{path.name}: {name}"
        labels = rule.get("labels") or {}
        ann = rule.get("annotations") or {}
        if not ALERT_NAME.fullmatch(name):
            problems.append(f"{where}: not CamelCase with the prefix Memexport")
        severity = labels.get("severity")
        if severity not in SEVERITIES:
            problems.append(f"{where}: severity {severity!r} not in {sorted(SEVERITIES)}")
        if (name, severity) in seen:
            problems.append(f"{where}: two rules with severity {severity!r}")
        seen.add((name, severity))
        summary, description = ann.get("summary"), ann.get("description")
        if not summary or "{{" in summary:
            problems.append(f"{where}: summary must be static text, got {summary!r}")
        if not description or "{{" not in description:
            problems.append(f"{where}: description must be templated, got {description!r}")
        url = ann.get("runbook_url", "")
        if url != base_url + name.lower():
            problems.append(f"{where}: runbook_url {url!r} != {base_url + name.lower()!r}")
        if name.lower() not in anchors:
            problems.append(f"{where}: no '## {name}' section in {runbook.name}")
        uids = ([DASHBOARD_UIDS[path.name.split(".")[0]]] if path.name.split(".")[0]
                in DASHBOARD_UIDS else sorted(set(DASHBOARD_UIDS.values())))
        dash = ann.get("dashboard_url", "")
        if not any(dash.startswith(f"http://localhost:3000/d/{uid}?var-job=") for uid in uids):
            problems.append(f"{where}: dashboard_url {dash!r} does not open dashboard {uids}")
        if set(ann) != {"summary", "description", "runbook_url", "dashboard_url"}:
            problems.append(f"{where}: annotations {sorted(ann)}, want summary, description, "
                            f"runbook_url, dashboard_url")
    assert not problems, "\n".join(problems)


def test_recording_rule_names() -> None:
    """Recording rules are named level:metric:operations."""
    bad = [f"{p.name}: {r['record']}" for p in RULE_FILES for r in _rules(p)
           if "record" in r and not RECORD_NAME.fullmatch(r["record"])]
    assert not bad, "not level:metric:operations:\n" + "\n".join(bad)


def test_every_alert_has_firing_and_silent_cases() -> None:
    """Each alert (and each of its severities) fires in some test case and is silent in one."""
    defined: dict[str, set[str]] = {}
    for _, rule in _alerts():
        defined.setdefault(rule["alert"], set()).add((rule.get("labels") or {}).get("severity"))
    tested_rule_files: set[Path] = set()
    firing: dict[str, set[str]] = {}
    silent: set[str] = set()
    problems: list[str] = []
    for tf in TEST_FILES:
        doc = _load(tf)
        for rf in doc.get("rule_files") or []:
            matches = list(tf.parent.glob(rf))
            if not matches:
                problems.append(f"{tf.name}: rule file {rf!r} not found")
            tested_rule_files.update(m.resolve() for m in matches)
        for group in doc.get("tests") or []:
            for case in group.get("alert_rule_test") or []:
                name = case["alertname"]
                if name not in defined:
                    problems.append(f"{tf.name}: test for unknown alert {name!r}")
                exp = case.get("exp_alerts") or []
                if not exp:
                    silent.add(name)
                for alert in exp:
                    sev = (alert.get("exp_labels") or {}).get("severity")
                    firing.setdefault(name, set()).add(sev)
                    if not alert.get("exp_annotations"):
                        problems.append(f"{tf.name}: {name} fires without exp_annotations")
    for rf in RULE_FILES:
        if rf.resolve() not in tested_rule_files:
            problems.append(f"{rf.name}: not listed in the rule_files of any test file")
    for name, severities in sorted(defined.items()):
        missing = severities - firing.get(name, set())
        if missing:
            problems.append(f"{name}: no test case where it fires with severity {sorted(missing)}")
        if name not in silent:
            problems.append(f"{name}: no test case where it must stay silent (exp_alerts: [])")
    assert not problems, "\n".join(dict.fromkeys(problems))


def test_every_budget_has_an_alert() -> None:
    """Each ``memexport_*_budget_bytes`` in docs/metrics.md is compared with usage by an alert."""
    budgets = sorted({m.group(1) for line in CATALOGUE.read_text(encoding="utf-8").splitlines()
                      if (m := CATALOGUE_ROW.match(line)) and BUDGET_METRIC.fullmatch(m.group(1))})
    assert budgets, f"no memexport_*_budget_bytes rows in {CATALOGUE}"
    used = {name for _, rule in _alerts()
            for name in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", str(rule["expr"]))}
    missing = [b for b in budgets if b not in used]
    assert not missing, f"budgets no alert compares with their usage: {missing}"


def test_github_anchor() -> None:
    assert github_anchor("MemexportProcessMemoryNearLimit") == "memexportprocessmemorynearlimit"
    assert github_anchor("Tuning the thresholds (all alerts)") == "tuning-the-thresholds-all-alerts"


# -- amtool --------------------------------------------------------------------------------


def test_amtool_check_config() -> None:
    amtool = require_binary("amtool")
    res = _run([amtool, "check-config", str(AM_CONFIG)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout, res.stdout


ROUTES: list[dict[str, Any]] = _load(ROUTE_CASES)


@pytest.mark.parametrize(
    "case", ROUTES, ids=[",".join(f"{k}={v}" for k, v in c["labels"].items()) for c in ROUTES])
def test_amtool_routes(case: dict[str, Any]) -> None:
    amtool = require_binary("amtool")
    labels = [f"{k}={v}" for k, v in case["labels"].items()]
    res = _run([amtool, "config", "routes", "test", f"--config.file={AM_CONFIG}", *labels])
    assert res.returncode == 0, res.stdout + res.stderr
    receivers = res.stdout.strip().split(",")
    assert receivers == case["receivers"], f"{labels} -> {receivers}"


def test_route_cases_cover_every_severity() -> None:
    severities = {c["labels"].get("severity") for c in ROUTES}
    assert severities >= SEVERITIES, severities


# -- a real Alertmanager -------------------------------------------------------------------


class Alertmanager:
    """A running Alertmanager on a loopback port."""

    def __init__(self, port: int, proc: subprocess.Popen[str], log: Path) -> None:
        self.port, self.proc, self.log = port, proc, log

    def api(self, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v2/{path}", data=data,
            headers={"Content-Type": "application/json"}, method="GET" if data is None else "POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None


def start_alertmanager(config: Path, tmp: Path) -> Alertmanager:
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    log = tmp / "alertmanager.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
             "--cluster.listen-address=", f"--storage.path={tmp / 'data'}", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", 30, proc)
    except BaseException as exc:
        stop_process(proc)
        raise AssertionError(f"Alertmanager did not start:\n{log.read_text()}") from exc
    return Alertmanager(port, proc, log)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    """The real Alertmanager running the shipped alerts/alertmanager.yml."""
    am = start_alertmanager(AM_CONFIG, tmp_path)
    try:
        yield am
    finally:
        stop_process(am.proc)


def _alert(name: str, severity: str, instance: str = "app:9464") -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "severity": severity, "job": "app", "instance": instance},
        "annotations": {"summary": "test", "description": f"{name} {severity} from a test"},
        "startsAt": datetime.now(timezone.utc).isoformat(),
    }


NEAR = "MemexportProcessMemoryNearLimit"


@pytest.mark.e2e
def test_alertmanager_critical_inhibits_warning(alertmanager: Alertmanager) -> None:
    alertmanager.api("alerts", [_alert(NEAR, "critical"), _alert(NEAR, "warning"),
                                _alert(NEAR, "warning", instance="other:9464")])

    def by_key() -> dict[tuple[str, str], dict[str, Any]]:
        return {(a["labels"]["severity"], a["labels"]["instance"]): a
                for a in alertmanager.api("alerts")}

    def settled() -> dict[tuple[str, str], dict[str, Any]]:
        alerts = by_key()
        warn = alerts.get(("warning", "app:9464"))
        return alerts if len(alerts) == 3 and warn and warn["status"]["inhibitedBy"] else {}

    alerts = poll(settled) or by_key()
    critical = alerts[("critical", "app:9464")]
    warning = alerts[("warning", "app:9464")]
    other = alerts[("warning", "other:9464")]
    assert warning["status"]["state"] == "suppressed", warning
    assert warning["status"]["inhibitedBy"] == [critical["fingerprint"]], warning
    assert critical["status"]["state"] == "active", critical
    assert not critical["status"]["inhibitedBy"], critical
    # Same alert name, other instance: not inhibited (equal: [alertname, job, instance]).
    assert other["status"]["state"] == "active", other
    assert [r["name"] for r in critical["receivers"]] == ["page"]
    assert [r["name"] for r in warning["receivers"]] == ["ticket"]


class _Webhook(ThreadingHTTPServer):
    """Records the JSON bodies Alertmanager posts, by path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        super().__init__(("127.0.0.1", 0), _WebhookHandler)


class _WebhookHandler(BaseHTTPRequestHandler):
    server: _Webhook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[_Webhook]:
    server = _Webhook()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.e2e
def test_alertmanager_notifies_page_and_ticket(tmp_path: Path, webhook: _Webhook) -> None:
    """The shipped routing with the webhooks pointed at a local receiver and short waits."""
    config = _load(AM_CONFIG)
    config["route"].update(group_wait="1s", group_interval="1s")
    base = f"http://127.0.0.1:{webhook.server_address[1]}"
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs") or []:
            hook["url"] = base + "/" + receiver["name"]
    cfg = tmp_path / "alertmanager.yml"
    cfg.write_text(yaml.safe_dump(config))
    am = start_alertmanager(cfg, tmp_path)
    try:
        am.api("alerts", [_alert(NEAR, "critical"), _alert(NEAR, "warning"),
                          _alert("MemexportProcessMemoryGrowing", "warning"),
                          _alert("MemexportExampleInfo", "info")])

        def delivered() -> dict[str, list[tuple[str, str]]]:
            got: dict[str, list[tuple[str, str]]] = {}
            for path, body in list(webhook.received):
                for a in body["alerts"]:
                    got.setdefault(path, []).append(
                        (a["labels"]["alertname"], a["labels"]["severity"]))
            return got if "/page" in got and "/ticket" in got else {}

        got = poll(delivered)
        log = am.log.read_text()
    finally:
        stop_process(am.proc)
    assert got, f"no notification on both webhooks; received {webhook.received}\n{log}"
    assert got["/page"] == [(NEAR, "critical")], got
    assert ("MemexportProcessMemoryGrowing", "warning") in got["/ticket"], got
    # The inhibited warning never reaches the ticket receiver; info reaches nobody.
    assert (NEAR, "warning") not in got["/ticket"], got
    assert set(got) == {"/page", "/ticket"}, got
