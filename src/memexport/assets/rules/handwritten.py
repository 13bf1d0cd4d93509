"""Rule files written by hand (``rules/handwritten/*.rules.yml``), shipped beside the generated
ones with their runbook links, dashboard links and group names following the config."""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable

from memexport.assets.config import Config, Dashboards
from memexport.assets.rules.common import Q

__all__ = ["render_handwritten"]

_ALERT = re.compile(r"^\s*(?:-\s+)?alert:\s*['\"]?([A-Za-z0-9_:]+)")
_RUNBOOK = re.compile(r"^(\s*runbook_url:\s*)['\"]?(\S+?)['\"]?\s*$")
_GROUP = re.compile(r"^(\s*-\s+name:\s*['\"]?)memexport-")


def _dashboard_links(text: str, cfg: Config) -> str:
    default, base = Config().grafana_url, cfg.grafana_url.rstrip("/")
    for area, uid in vars(Dashboards()).items():
        text = text.replace(f"{default}/d/{uid}", f"{base}/d/{getattr(cfg.dashboards, area)}")
    return text


def _rewrite(text: str, q: Q) -> str:
    prefix = Config().runbook_url.split("{", 1)[0]
    alert = ""
    out = []
    for line in text.split("\n"):
        if m := _ALERT.match(line):
            alert = m.group(1)
        elif (m := _RUNBOOK.match(line)) and alert and m.group(2).startswith(prefix):
            line = f"{m.group(1)}{q.runbook(alert)}"
        line = _GROUP.sub(rf"\g<1>{q.cfg.group_prefix}-", line)
        out.append(line)
    return _dashboard_links("\n".join(out), q.cfg)


def render_handwritten(q: Q, folder: Traversable | None = None) -> dict[str, str]:
    """``{file name: text}`` of the hand-written rule files (of ``folder``; default: the
    package's ``handwritten/``), for ``q``'s config."""
    folder = folder or resources.files("memexport.assets.rules") / "handwritten"
    return {f.name: _rewrite(f.read_text(encoding="utf-8"), q)
            for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".rules.yml")}
