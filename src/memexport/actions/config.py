"""Actions from configuration: a mapping, or a JSON, TOML or YAML file.

::

    {"receiver": {"evidence_dir": "/var/tmp/memexport", "job": "app", "dry_run": false,
                  "bearer_token_file": "/run/secrets/memexport-actions"},
     "actions": [
       {"use": "evidence", "alerts": ["MemexportProcessMemoryNearLimit"],
        "on": ["firing", "resolved"], "cooldown": 600},
       {"use": "shed", "alerts": ["MemexportProcessMemoryNearLimit"],
        "labels": {"severity": "critical"}, "max_runs": 3, "window": 3600,
        "options": {"caches": {"llm_responses": 0.5}, "cleanups": ["*"]}},
       {"use": "flush_embeddings", "alerts": ["MemexportCacheOverBudget"]}]}

``use`` is a built-in (``evidence``, ``shed``) or the name of an action registered in code
(``@memexport.action``), which the entry then re-binds to other alerts or limits; a
configuration never imports code. Unknown keys are errors, named with their place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memexport.actions.catalog import Action, ActionSet, Match
from memexport.actions.limits import Limits
from memexport.core.checks import shown

__all__ = ["Settings", "load_settings"]

_RECEIVER_KEYS = {"evidence_dir", "evidence_max_bytes", "evidence_max_files",
                  "evidence_max_age", "job", "instances", "dry_run", "bearer_token",
                  "bearer_token_file"}
_ACTION_KEYS = {"use", "name", "alerts", "labels", "on", "max_runs", "window", "cooldown",
                "timeout", "options"}
_LIMIT_KEYS = ("max_runs", "window", "cooldown", "timeout")


@dataclass
class Settings:
    """Receiver settings a configuration gave (``None``: not given)."""

    evidence_dir: str | None = None
    evidence_max_bytes: float = 64 * 2**20
    evidence_max_files: int = 100
    evidence_max_age: float = 7 * 86400.0
    job: str | None = None
    instances: list[str] = field(default_factory=list)
    dry_run: bool = False
    bearer_token: str | None = None


def _read(path: str | os.PathLike[str]) -> Any:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"actions config {shown(str(path))} cannot be read "
                         f"({exc.strerror or type(exc).__name__})") from None
    suffix = p.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        if suffix in (".yml", ".yaml"):
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except ImportError:
        raise ValueError(f"actions config {shown(str(path))}: reading {suffix} needs "
                         f"{'tomllib (Python 3.11+)' if suffix == '.toml' else 'PyYAML'}; "
                         f"or use JSON") from None
    except Exception as exc:
        raise ValueError(f"actions config {shown(str(path))} is not valid {suffix[1:] or 'JSON'}"
                         f" ({type(exc).__name__})") from None


def _builtin(use: str, name: str, match: Match, limits: Limits,
             options: Mapping[str, Any]) -> Action:
    if use == "evidence":
        from memexport.actions.evidence import evidence

        return evidence(name=name, match=match, limits=limits, **options)
    from memexport.actions.shedding import shed

    return shed(name=name, match=match, limits=limits, **options)


def _action(entry: Any, where: str, action_set: ActionSet) -> Action:
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a mapping")
    unknown = set(entry) - _ACTION_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    use = entry.get("use")
    if not isinstance(use, str):
        raise ValueError(f"{where}.use must name a built-in (evidence, shed) or an action "
                         f"registered in code")
    name = entry.get("name", use)
    options = entry.get("options") or {}
    if not isinstance(options, dict):
        raise ValueError(f"{where}.options must be a mapping")
    try:
        code = None if use in ("evidence", "shed") else action_set.get(use)
        if code is None and use not in ("evidence", "shed"):
            raise ValueError(f"no action named {shown(use)} is registered in code")
        match = Match.of(entry.get("alerts") or (sorted(code.match.alerts) if code else ()),
                         entry.get("labels"), entry.get("on", ("firing",)))
        base = code.limits if code is not None else Limits()
        limits = Limits(**{k: entry.get(k, getattr(base, k)) for k in _LIMIT_KEYS})
        if code is not None:
            if options:
                raise ValueError("options are for the built-ins evidence and shed")
            return Action(name, code.fn, match, limits, frees=code.frees, order=code.order,
                          steps=code.steps)
        return _builtin(use, name, match, limits, options)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def load_settings(config: str | os.PathLike[str] | Mapping[str, Any] | None,
                  action_set: ActionSet) -> Settings:
    """Read ``config`` (or ``MEMEXPORT_ACTIONS_CONFIG``), add its actions to ``action_set``
    and return its receiver settings; ValueError naming the bad entry."""
    if config is None:
        env = os.environ.get("MEMEXPORT_ACTIONS_CONFIG")
        if not env:
            return Settings()
        config = env
    doc = config if isinstance(config, Mapping) else _read(config)
    if not isinstance(doc, Mapping):
        raise ValueError("actions config must be a mapping with 'receiver' and 'actions'")
    unknown = set(doc) - {"receiver", "actions"}
    if unknown:
        raise ValueError(f"actions config: unknown keys {sorted(unknown)}")
    settings = Settings()
    receiver = doc.get("receiver") or {}
    if not isinstance(receiver, Mapping) or set(receiver) - _RECEIVER_KEYS:
        raise ValueError(f"actions config receiver: use only {sorted(_RECEIVER_KEYS)}")
    for key, value in receiver.items():
        if key == "bearer_token_file":
            settings.bearer_token = Path(value).read_text(encoding="utf-8").strip()
        elif key == "instances":
            settings.instances = [value] if isinstance(value, str) else list(value)
        else:
            setattr(settings, key, value)
    entries = doc.get("actions") or []
    if not isinstance(entries, list):
        raise ValueError("actions config: 'actions' must be a list")
    built = [_action(e, f"actions[{i}]", action_set) for i, e in enumerate(entries)]
    for act in built:
        action_set.add(act, replace=True)
    return settings
