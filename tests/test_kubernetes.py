"""The Kubernetes examples (deploy/kubernetes/) validate against published schemas, and so does
a PrometheusRule holding the committed alert rules; broken manifests fail the same check."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from conftest import ROOT
from k8s_support import Manifest, load, problems, validate_manifest

DEPLOY = ROOT / "deploy" / "kubernetes"
RULE_FILES = sorted((ROOT / "alerts").glob("*.rules.yml"))


def prometheus_rule(rule_files: list[Path]) -> dict[str, Any]:
    """A kube-prometheus-style PrometheusRule: every group of ``rule_files`` in spec.groups."""
    groups = [g for f in rule_files for g in yaml.safe_load(f.read_text())["groups"]]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "memexport", "labels": {"release": "kube-prometheus-stack"}},
        "spec": {"groups": groups},
    }


def test_every_manifest_file_validates() -> None:
    files = sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
    assert {p.name for p in files} >= {"deployment.yaml", "podmonitor.yaml", "service.yaml",
                                       "servicemonitor.yaml"}
    validate_manifest(*files)


def test_the_kustomization_renders_and_validates() -> None:
    kinds = [m.obj["kind"] for m in validate_manifest(DEPLOY)]
    assert {"Deployment", "PodMonitor"} <= set(kinds)
    assert "ServiceMonitor" not in kinds  # with the PodMonitor: every pod scraped twice


def test_the_deployment_binds_all_interfaces_on_the_port_the_monitors_scrape() -> None:
    objs = {m.obj["kind"]: m.obj for f in DEPLOY.glob("*.yaml") if f.name != "kustomization.yaml"
            for m in load(f)}
    container = objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MEMEXPORT_ADDR"] == "0.0.0.0"  # the loopback default is unreachable by Prometheus
    port = next(p for p in container["ports"] if p["name"] == "metrics")
    assert str(port["containerPort"]) == env["MEMEXPORT_PORT"]
    labels = objs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for kind, endpoints in (("PodMonitor", "podMetricsEndpoints"), ("ServiceMonitor", "endpoints")):
        assert objs[kind]["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert [e["port"] for e in objs[kind]["spec"][endpoints]] == ["metrics"]
    assert objs["Service"]["spec"]["selector"].items() <= labels.items()


def test_a_prometheus_rule_of_the_committed_alerts_validates(tmp_path: Path) -> None:
    assert RULE_FILES
    rule = prometheus_rule(RULE_FILES)
    path = tmp_path / "prometheusrule.yaml"
    path.write_text(yaml.safe_dump(rule, sort_keys=False))
    (checked,) = validate_manifest(path)
    alerts = [r for g in checked.obj["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert alerts and all("expr" in r for r in alerts)


def _broken(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(obj)
    target: Any = broken
    *parents, last = path.split(".")
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[last] = value
    return broken


#: {case: (file, dotted path, bad value, what the error must say)}
BROKEN = {
    "port_number_as_name": ("deployment.yaml",
                            "spec.template.spec.containers.0.ports.0.containerPort", "metrics",
                            "containerPort must be integer"),
    "unknown_container_field": ("deployment.yaml", "spec.template.spec.containers.0.imagee",
                                "x", "imagee"),
    "replicas_not_integer": ("deployment.yaml", "spec.replicas", "two", "replicas must be integer"),
    "podmonitor_interval_not_a_duration": (
        "podmonitor.yaml", "spec.podMetricsEndpoints.0.interval", "15 seconds",
        "interval must match pattern"),
    "podmonitor_unknown_field": ("podmonitor.yaml", "spec.podMetricsEndpoint", [],
                                 "podMetricsEndpoint"),
    "servicemonitor_port_as_number": ("servicemonitor.yaml", "spec.endpoints.0.port", 9464,
                                      "port must be string"),
}

#: {case: (dotted path under the first alert of process.rules.yml, bad value, error text)}
BROKEN_RULES = {
    "rule_for_not_a_duration": ("for", "15 minutes", "/for must match pattern"),
    "rule_unknown_field": ("expression", "up == 0", "expression"),
    "rule_labels_not_strings": ("labels", ["page"], "/labels must be object"),
}


def test_broken_manifests_fail() -> None:
    cases: list[Manifest] = []
    for case, (file, path, value, _) in BROKEN.items():
        (good,) = load(DEPLOY / file)
        cases.append(Manifest(case, _broken(good.obj, path, value)))
    rule = prometheus_rule([ROOT / "alerts" / "process.rules.yml"])
    group, at = next((g, i) for g, grp in enumerate(rule["spec"]["groups"])
                     for i, r in enumerate(grp["rules"]) if "alert" in r)
    for case, (path, value, _) in BROKEN_RULES.items():
        cases.append(Manifest(case, _broken(rule, f"spec.groups.{group}.rules.{at}.{path}",
                                            value)))
    cases.append(Manifest("intact_rule", rule))
    found = problems(cases)
    by_case = {m.where: [p for p in found if p.startswith(f"{m.where}:")] for m in cases}
    assert by_case.pop("intact_rule") == []
    expected = {c: v[-1] for c, v in BROKEN.items()} | {c: v[-1] for c, v in BROKEN_RULES.items()}
    for case, errors in by_case.items():
        assert errors, f"{case}: accepted"
        assert any(expected[case] in e for e in errors), (case, errors)


def test_a_kind_without_a_published_schema_is_an_error() -> None:
    found = problems([Manifest("x", {"apiVersion": "example.com/v1", "kind": "Gadget",
                                     "metadata": {"name": "g"}})])
    assert found and "no published schema" in found[0]
