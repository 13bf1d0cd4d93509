"""Reading a (partial) assets config from a YAML/JSON file and ``--set KEY=VALUE`` overrides,
with an error naming every bad key or value; ``describe`` lists every setting."""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from memexport.assets.config import Config
from memexport.assets.values import ConfigError, Duration, parse_duration

__all__ = ["apply_overrides", "changed_settings", "describe", "from_mapping", "leaves",
           "load_config"]

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _key(name: str) -> str:
    """Config key of a dataclass field (``for_`` is written ``for``)."""
    return name.rstrip("_")


def _convert(tp: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {str(value)[:40]!r}")
        return from_mapping(tp, value, where)
    if tp is Duration:
        parse_duration(value, where)
        return Duration(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {str(value)[:40]!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}: expected a whole number >= 0, got {str(value)[:40]!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}: expected a number >= 0, got {str(value)[:40]!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {str(value)[:40]!r}")
        return value
    if typing.get_origin(tp) is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not value or not all(
                isinstance(v, str) and _LABEL.match(v) for v in value):
            raise ConfigError(f"{where}: expected a list of label names, got "
                              f"{str(value)[:40]!r}")
        return tuple(value)
    raise ConfigError(f"{where}: unsupported type {tp!r}")  # pragma: no cover


T = typing.TypeVar("T")


def from_mapping(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build ``cls`` from a (partial) mapping; unknown keys and bad values raise ConfigError."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a config dataclass")  # pragma: no cover
    hints = typing.get_type_hints(cls)
    fields = {_key(f.name): f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: "
                          f"{', '.join(sorted(fields))})")
    values = {fields[k].name: _convert(hints[fields[k].name], v, f"{where}.{k}")
              for k, v in data.items()}
    obj = cls(**values)
    _validate(obj, where)
    return obj


def _validate(obj: Any, where: str) -> None:
    if isinstance(obj, Config):
        if obj.time_scale <= 0:
            raise ConfigError(f"{where}.time_scale: must be > 0, got {obj.time_scale!r}")
        for name in dataclasses.astuple(obj.labels):
            if not _LABEL.match(name):
                raise ConfigError(f"{where}.labels: not a label name: {name[:40]!r}")
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float) and (f.name.endswith("ratio") or "quantile" in f.name
                                         or f.name.startswith(("near_limit", "thrashing_hit"))):
            if value > 1:
                raise ConfigError(f"{where}.{_key(f.name)}: a ratio must be <= 1, got {value!r}")


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Put ``value`` at a dotted key (``process.trend_window``) of a nested mapping."""
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {p!r} is not a section")
        node = child
    node[parts[-1]] = value


def _raw(text: str) -> Any:
    """A ``--set`` value: JSON if it parses (numbers, lists, quoted strings), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` strings (dotted keys) to a config mapping, in order."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item[:60]!r}")
        _set(data, key.strip(), _raw(raw.strip()))
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """The config from a YAML or JSON file (partial: defaults fill the rest) plus overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config {str(p)[:200]!r}: {exc.strerror}") from None
        data = _parse(text, str(p))
    apply_overrides(data, list(overrides or []))
    return from_mapping(Config, data)


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        loaded: Any = json.loads(text)
    except ValueError:
        try:
            yaml: Any = importlib.import_module("yaml")
        except ImportError:
            raise ConfigError(f"{where}: not JSON, and PyYAML is not installed to read YAML "
                              f"(pip install pyyaml, or write the config as JSON)") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: not valid YAML: {str(exc)[:200]}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{where}: the config must be a mapping at the top level")
    data: dict[str, Any] = {}
    for key, value in loaded.items():  # dotted keys (as `memexport assets config` prints)
        _set(data, str(key), value)
    return data


def describe(cls: type[Any] = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(dotted key, default, doc)`` for every leaf of the config, for docs and --help."""
    out: list[tuple[str, str, str]] = []
    default = cls()
    for f in dataclasses.fields(cls):
        key = prefix + _key(f.name)
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(value):
            out.extend(describe(type(value), key + "."))
            continue
        shown = json.dumps(list(value) if isinstance(value, tuple) else value)
        out.append((key, shown, f.metadata.get("doc", "")))
    return out


def leaves(cfg: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``(dotted key, JSON value)`` of every leaf setting of ``cfg``."""
    out: list[tuple[str, str]] = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = prefix + _key(f.name)
        if dataclasses.is_dataclass(value):
            out.extend(leaves(value, key + "."))
        else:
            out.append((key, json.dumps(list(value) if isinstance(value, tuple) else value)))
    return out


def changed_settings(cfg: Config) -> list[str]:
    """``key=value`` for every setting of ``cfg`` that differs from the defaults."""
    default = dict(leaves(Config()))
    return [f"{k}={v}" for k, v in leaves(cfg) if v != default[k]]
