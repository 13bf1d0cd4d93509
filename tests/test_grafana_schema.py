"""The committed dashboards type-check against Grafana's own published schema (@grafana/schema
from npm, pinned in tests/npm), and dashboards Grafana would reject do not.

Each dashboard becomes ``export const dashboard: CheckedDashboard = <its JSON>;`` (the type is
built in tests/npm/grafana.ts, which says why that type) and ``tsc --noEmit --strict`` runs over
all of them at once. The panel queries themselves run on a real Prometheus elsewhere
(tests/test_dashboards.py).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from npm_support import NPM_PROJECT, tsc

DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
ERROR = re.compile(r"^(?P<file>[^(\s]+)\((?P<line>\d+),(?P<col>\d+)\): error (?P<code>TS\d+): "
                   r"(?P<msg>.*)$")


def typecheck(tmp_path: Path, dashboards: dict[str, Any]) -> dict[str, list[str]]:
    """``tsc --noEmit --strict`` over ``{name: dashboard JSON}``: the errors of each name."""
    for name in ("grafana.ts", "tsconfig.json"):
        shutil.copy2(NPM_PROJECT / name, tmp_path / name)
    for name, dashboard in dashboards.items():
        (tmp_path / f"{name}.ts").write_text(
            "import type { CheckedDashboard } from './grafana.js';\n"
            f"export const dashboard: CheckedDashboard = {json.dumps(dashboard, indent=2)};\n")
    done = tsc(tmp_path, "-p", "tsconfig.json", "--noEmit", "--strict")
    errors: dict[str, list[str]] = {name: [] for name in dashboards}
    for line in done.stdout.splitlines():
        found = ERROR.match(line)
        if found and found["file"].endswith(".ts") and found["file"][:-3] in errors:
            errors[found["file"][:-3]].append(f"{found['code']} {found['msg']}")
        elif line.strip() and not line.startswith(" "):
            raise AssertionError(f"tsc reported outside the dashboards:\n{done.stdout}")
    if done.returncode not in (0, 1, 2) or (done.returncode == 0) != (not any(errors.values())):
        raise AssertionError(f"tsc exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return errors


def test_every_committed_dashboard_satisfies_grafanas_schema(tmp_path: Path) -> None:
    assert DASHBOARDS, "no dashboards in grafana/dashboards"
    errors = typecheck(tmp_path, {f"d_{p.stem}": json.loads(p.read_text()) for p in DASHBOARDS})
    failing = {name: errs for name, errs in errors.items() if errs}
    assert not failing, "dashboards Grafana's schema rejects:\n" + "\n".join(
        f"{name}: {err}" for name, errs in failing.items() for err in errs[:5])


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _first(dashboard: dict[str, Any], panel_type: str) -> dict[str, Any]:
    return next(p for p in _panels(dashboard) if p["type"] == panel_type)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def breaker(panel: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = panel
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
    return breaker


#: {case: (panel type to break or "" for the dashboard, the breakage, what tsc must say)}
BROKEN: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "panel_field_wrong_type": ("timeseries", _set("gridPos.w", "24"), "not assignable"),
    "panel_unknown_field": ("stat", _set("titel", "typo of title"), "titel"),
    "stat_option_outside_enum": ("stat", _set("options.graphMode", "sparkline"), "sparkline"),
    "timeseries_custom_wrong_type": (
        "timeseries", _set("fieldConfig.defaults.custom.lineWidth", "thick"), "not assignable"),
    "unknown_panel_type": ("table", _set("type", "tabel"), "tabel"),
    "threshold_mode_outside_enum": (
        "timeseries", _set("fieldConfig.defaults.thresholds.mode", "relative"), "relative"),
    "dashboard_schema_version_string": ("", _set("schemaVersion", "41"), "not assignable"),
}


def test_dashboards_grafana_would_reject_fail_the_check(tmp_path: Path) -> None:
    source = json.loads((ROOT / "grafana" / "dashboards" / "pools.json").read_text())
    cases: dict[str, Any] = {"d_intact": source}
    for case, (panel_type, breaker, _) in BROKEN.items():
        broken = copy.deepcopy(source)
        breaker(_first(broken, panel_type) if panel_type else broken)
        cases[f"d_{case}"] = broken
    errors = typecheck(tmp_path, cases)
    assert errors.pop("d_intact") == []
    for case, (_, _, expected) in BROKEN.items():
        found = errors[f"d_{case}"]
        assert found, f"{case}: tsc accepted a dashboard Grafana's schema rejects"
        assert any(expected in err for err in found), f"{case}: {found}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_uses_only_the_checked_panel_types(path: Path) -> None:
    """Every panel type is one grafana.ts checks options for (else it would fail above)."""
    checked = set(re.findall(r"^  '?([a-z-]+)'?: PanelOf<", (NPM_PROJECT / "grafana.ts")
                             .read_text(), re.M))
    used = {p["type"] for p in _panels(json.loads(path.read_text()))} - {"row"}
    assert used <= checked, used - checked
