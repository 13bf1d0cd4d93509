"""``validate_manifest(path)``: check Kubernetes manifests against published schemas, no cluster.

Each object is checked twice, against the models npm publishes (pinned in tests/npm):
kubernetes-models for the built-in kinds (from the Kubernetes OpenAPI spec) and
@kubernetes-models/prometheus-operator for PodMonitor, ServiceMonitor, PrometheusRule, ...
(from prometheus-operator's API types, which its CRDs are generated from):

- TypeScript (``tsc --strict``): the object as a literal of the kind's interface, so a wrong
  type or an unknown field (which ``kubectl apply``'s strict field validation rejects) fails;
- the packages' JSON-schema validators (``tests/npm/k8s_validate.mjs``): required fields,
  enums and patterns (a Prometheus duration like ``for: 5m``).

A directory with a ``kustomization.yaml`` is rendered with ``kubectl kustomize`` (offline)
and every rendered object checked. A kind with no published model here is an error, never a
pass.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from conftest import require_binary
from npm_support import NPM_PROJECT, node_modules, run_node, tsc

#: API group -> the npm package with its models; "" is the core group ("v1").
PACKAGES = {
    "": "kubernetes-models",
    "apps": "kubernetes-models",
    "batch": "kubernetes-models",
    "policy": "kubernetes-models",
    "networking.k8s.io": "kubernetes-models",
    "autoscaling": "kubernetes-models",
    "rbac.authorization.k8s.io": "kubernetes-models",
    "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
}


@dataclass(frozen=True)
class Manifest:
    """One object and where it came from (file and document index), for error messages."""

    where: str
    obj: dict[str, Any]


def _module(obj: dict[str, Any]) -> tuple[str, str]:
    """The npm module and model class of an object's apiVersion/kind (AssertionError if none)."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise AssertionError(f"not a Kubernetes object (apiVersion/kind): {str(obj)[:80]}")
    group, _, version = api_version.rpartition("/")
    package = PACKAGES.get(group)
    sub = f"{group}/{version}" if group else version
    module = f"{package}/{sub}/{kind}"
    if package is None or not (node_modules() / package / sub / f"{kind}.d.ts").exists():
        raise AssertionError(f"no published schema here for {api_version} {kind}")
    return module, kind


def load(path: Path) -> list[Manifest]:
    """The objects of a YAML file, or those a kustomization directory renders."""
    if path.is_dir():
        kubectl = require_binary("kubectl")
        done = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"kubectl kustomize {path} failed:\n{done.stderr}")
        text, name = done.stdout, f"{path}/ (kustomize)"
    else:
        text, name = path.read_text(), str(path)
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    if not docs:
        raise AssertionError(f"{name}: no Kubernetes object in it")
    return [Manifest(f"{name}#{i} {d.get('kind')}/{d.get('metadata', {}).get('name')}", d)
            for i, d in enumerate(docs)]


def problems(manifests: list[Manifest]) -> list[str]:
    """Everything wrong with ``manifests`` (empty: all valid), in one tsc and one node run."""
    with tempfile.TemporaryDirectory(prefix="memexport-k8s-") as tmp:
        work = Path(tmp)
        found: list[str] = []
        items, lines = [], []
        names: dict[str, str] = {}
        for i, m in enumerate(manifests):
            try:
                module, model = _module(m.obj)
            except AssertionError as exc:
                found.append(f"{m.where}: {exc}")
                continue
            items.append({"where": m.where, "module": module, "model": model, "object": m.obj})
            lines.append(f"import type {{ I{model} as T{i} }} from '{module}';\n"
                         f"export const m{i}: T{i} = {json.dumps(m.obj, indent=2)};\n")
            names[f"m{i}.ts"] = m.where
            (work / f"m{i}.ts").write_text(lines[-1])
        if items:
            (work / "tsconfig.json").write_text((NPM_PROJECT / "tsconfig.json").read_text())
            typed = tsc(work, "-p", "tsconfig.json", "--noEmit", "--strict")
            for line in typed.stdout.splitlines():
                file = line.split("(", 1)[0]
                if file in names:
                    at = line[len(file):].split(":", 1)[0]  # "(line,col)"
                    source = (work / file).read_text().splitlines()
                    number = int(at.strip("()").split(",")[0])
                    text = source[number - 1].strip() if 0 < number <= len(source) else ""
                    found.append(f"{names[file]}: {line[len(file):]} [at: {text[:80]}]")
                elif line.strip() and not line.startswith(" "):
                    found.append(line)
            if typed.returncode != 0 and not typed.stdout.strip():
                found.append(f"tsc exited {typed.returncode}: {typed.stderr}")
            (work / "items.json").write_text(json.dumps(items))
            script = work / "k8s_validate.mjs"
            script.write_text((NPM_PROJECT / "k8s_validate.mjs").read_text())
            checked = run_node(work, str(script), str(work / "items.json"))
            if checked.returncode != 0:
                found.append(f"k8s_validate.mjs exited {checked.returncode}: {checked.stderr}")
            else:
                found += [f"{p['where']}: {p['error']}" for p in json.loads(checked.stdout)]
        return found


def validate_manifest(*paths: Path) -> list[Manifest]:
    """Check every object in ``paths`` (YAML files or kustomization directories); return them.

    Raises AssertionError listing every problem when any object is invalid.
    """
    manifests = [m for p in paths for m in load(Path(p))]
    found = problems(manifests)
    if found:
        raise AssertionError("invalid Kubernetes manifests:\n" + "\n".join(found))
    return manifests
