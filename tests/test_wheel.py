"""The built wheel carries everything ``memexport assets --out`` needs, and what it writes from
a clean venv is valid for the real tools.

The wheel is built from this checkout (``pip wheel --no-deps --no-build-isolation``: hatchling
is in the dev extra, so no network). The venv is a plain ``python -m venv --without-pip``: no
system site-packages, no PYTHONPATH, nothing of the checkout. This interpreter's pip installs
into it (``pip --python``), offline: ``--no-index --find-links`` over the built wheel and a
wheelhouse of memexport's runtime dependencies (pyproject.toml ``dependencies``), downloaded
once per requirement set into the test cache (tests/cache_support.py) from the configured
index (PyPI in CI) and reused. From the venv, ``memexport assets --out DIR`` runs with a
user's config (their runbook URL and pager webhook), and DIR is checked with promtool (check
rules, and the repository's promtool cases rewritten to the user's runbook URL), amtool,
prometheus-operator's PrometheusRule schema, and ``memexport assets --check``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from cache_support import cache_root, install_lock
from conftest import ROOT, require_binary
from k8s_support import validate_manifest

from memexport.assets.config import Config

_PIP_NOISE = ("WARNING: Location 'file:", "[notice]")
RUNBOOK = "https://wiki.example.org/ops/memexport#{anchor}"
PAGER = "https://pager.example.org/hooks/memexport"
#: promtool cases run on the venv's rules. process.test.yml (35 s alone) runs on the committed
#: rules in tests/test_alerts.py, which tests/test_alerts_assets.py holds equal to the
#: generator's output for the defaults; this file's rules differ from them only in links.
CASES = ("actions", "agents", "caches", "memory", "pools", "tasks")


def _run(*args: str | Path, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def _errors(res: subprocess.CompletedProcess[str]) -> str:
    return "\n".join(line for line in (res.stdout + res.stderr).splitlines()
                     if not line.startswith(_PIP_NOISE))


def dependencies() -> list[str]:
    """memexport's runtime dependencies as pyproject.toml lists them."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[\n(.*?)^\]", text, re.M | re.S)
    assert block, "pyproject.toml: no [project] dependencies"
    return re.findall(r'"([^"]+)"', block.group(1))


def wheelhouse() -> Path:
    """A directory of wheels of the runtime dependencies (downloaded on first use)."""
    reqs = dependencies()
    key = hashlib.sha256("\n".join([sys.version, sys.platform, *reqs]).encode()).hexdigest()
    house = cache_root() / f"wheelhouse-{key[:16]}"
    marker = house / ".complete"
    if not marker.exists():
        with install_lock("wheelhouse"):
            if not marker.exists():
                res = _run(sys.executable, "-m", "pip", "download", "-q", "--only-binary",
                           ":all:", "-d", house, *reqs, timeout=600)
                assert res.returncode == 0, f"pip download {' '.join(reqs)}:\n{_errors(res)}"
                marker.write_text(json.dumps(reqs))
    return house


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The wheel built from the checkout, and a clean venv with it installed."""
    started = time.monotonic()
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    res = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
               "-w", dist, ROOT, timeout=300)
    assert res.returncode == 0, _errors(res)
    (wheel,) = dist.glob("memexport-*.whl")
    venv = base / "venv"
    res = _run(sys.executable, "-m", "venv", "--without-pip", venv)
    assert res.returncode == 0, _errors(res)
    python = venv / "bin" / "python"
    res = _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index",
               "--find-links", dist, "--find-links", wheelhouse(), "memexport", timeout=300)
    assert res.returncode == 0, _errors(res)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONSAFEPATH")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    return {"wheel": wheel, "venv": venv, "python": python, "env": env, "cwd": base,
            "seconds": time.monotonic() - started}


def _memexport(built: dict[str, Any], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return _run(built["venv"] / "bin" / "memexport", *args, env=built["env"], cwd=built["cwd"])


def test_the_wheel_holds_the_package_and_the_shipped_assets(built: dict[str, Any]) -> None:
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    src = ROOT / "src"
    package = {p.relative_to(src).as_posix() for p in (src / "memexport").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert {"memexport/py.typed", "memexport/assets/rules/handwritten/README.md",
            "memexport/assets/rules/actions.py"} <= package
    assert package - names == set()
    shipped = {f"memexport/assets/shipped/grafana/dashboards/{p.name}"
               for p in (ROOT / "grafana" / "dashboards").glob("*.json")}
    shipped |= {"memexport/assets/shipped/alerts/runbook.md",
                "memexport/assets/shipped/alerts/alertmanager-actions.yml"}
    assert shipped - names == set()
    assert not [n for n in names if n.startswith(("grafana/", "alerts/", "tests/", "src/"))]


def test_the_venv_runs_the_installed_wheel(built: dict[str, Any]) -> None:
    res = _run(built["python"], "-c", "import sys, memexport, prometheus_client; "
               "print(memexport.__file__); print(sys.flags.no_site, sys.prefix != "
               "sys.base_prefix); import importlib.util as u; "
               "print(u.find_spec('grafana_foundation_sdk'), u.find_spec('yaml'))",
               env=built["env"], cwd=built["cwd"])
    assert res.returncode == 0, res.stderr
    path, flags, specs = res.stdout.splitlines()
    assert path.startswith(str(built["venv"])), path
    assert flags == "0 True" and specs == "None None"  # a venv without the SDK or PyYAML


def _user_cases(rules: Path, into: Path) -> list[Path]:
    """The repository's promtool cases of CASES, on ``rules``, expecting the user's links."""
    default = Config().runbook_url.format(anchor="")
    mine = RUNBOOK.format(anchor="")
    out = []
    into.mkdir()
    for stem in CASES:
        text = (ROOT / "alerts" / "tests" / f"{stem}.test.yml").read_text()
        assert default in text, stem
        doc = yaml.safe_load(text.replace(default, mine))
        doc["rule_files"] = [str(rules / Path(r).name) for r in doc["rule_files"]]
        path = into / f"{stem}.test.yml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        out.append(path)
    return out


def test_assets_from_the_installed_wheel_are_valid(built: dict[str, Any]) -> None:
    promtool, amtool = require_binary("promtool"), require_binary("amtool")
    base = built["cwd"]
    config = base / "mine.json"  # JSON: the venv has no PyYAML (see below)
    config.write_text(json.dumps({"runbook_url": RUNBOOK,
                                  "alertmanager": {"page_url": PAGER}}))
    out = base / "assets"
    res = _memexport(built, "assets", "--out", out, "--config", config)
    assert res.returncode == 0, res.stdout + res.stderr
    rules = sorted((out / "rules").glob("*.rules.yml"))
    assert {p.stem.removesuffix(".rules") for p in rules} == {*CASES, "process"}

    check = _run(promtool, "check", "rules", *rules)
    assert check.returncode == 0, check.stdout + check.stderr
    cases = _run(promtool, "test", "rules", *_user_cases(out / "rules", base / "cases"),
                 timeout=300)
    assert cases.returncode == 0, (cases.stdout + cases.stderr)[-6000:]

    for name in ("alertmanager.yml", "alertmanager-actions.yml"):
        am = _run(amtool, "check-config", out / name)
        assert am.returncode == 0 and "SUCCESS" in am.stdout, am.stdout + am.stderr
    assert f"url: {PAGER}\n" in (out / "alertmanager.yml").read_text()

    (kube,) = validate_manifest(out / "prometheusrule.yaml")
    alerts = [r for p in rules for g in yaml.safe_load(p.read_text())["groups"]
              for r in g["rules"] if "alert" in r]
    assert len(alerts) > 20
    for rule in alerts:
        assert rule["annotations"]["runbook_url"] == RUNBOOK.format(
            anchor=rule["alert"].lower()), rule["alert"]
    kube_alerts = [r for g in kube.obj["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert sorted(r["annotations"]["runbook_url"] for r in kube_alerts) == \
        sorted(r["annotations"]["runbook_url"] for r in alerts)

    # The default view, so the wheel's shipped dashboards serve it without the SDK.
    for path in (ROOT / "grafana" / "dashboards").glob("*.json"):
        assert (out / "dashboards" / path.name).read_text() == path.read_text(), path.name
    assert (out / "runbook.md").read_text() == (ROOT / "alerts" / "runbook.md").read_text()
    provider = yaml.safe_load((out / "provisioning" / "dashboards" / "memexport.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == str((out / "dashboards").resolve())

    same = _memexport(built, "assets", "--check", out, "--config", config)
    assert same.returncode == 0, same.stdout + same.stderr
    stale = _memexport(built, "assets", "--check", out)  # the defaults: other links
    assert stale.returncode == 1 and "rules/process.rules.yml (differs)" in stale.stdout

    yml = base / "mine.yml"
    yml.write_text(f"runbook_url: {RUNBOOK}\n")
    res = _memexport(built, "assets", "--out", base / "unused", "--config", yml)
    assert res.returncode == 2 and "pip install pyyaml" in res.stderr, res.stderr
    assert not (base / "unused").exists()
