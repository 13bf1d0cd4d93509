"""Post-import hooks: call a function once a module has been imported, now if it already is.

``wrapt.importer`` does this too, but importing it imports ``importlib.metadata`` (and with
it ``email``): about 12 ms of every first instrument call, for one hook on PyYAML. This is
the same mechanism (a ``sys.meta_path`` finder that, for a watched name only, asks the other
finders for the spec and chains its loader's ``exec_module``), for watched top-level names.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.util import find_spec
from types import ModuleType
from typing import Any

from memexport.core import forks

__all__ = ["when_imported"]

Hook = Callable[[ModuleType], None]

_hooks: dict[str, list[Hook]] = {}
_lock = forks.RLock()


class _ChainedLoader:
    """The real loader, whose ``exec_module`` then runs the name's hooks."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:
        if name == "_loader":  # not set yet (a copy being made)
            raise AttributeError(name)
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        spec = getattr(module, "__spec__", None)
        if spec is not None and getattr(spec, "loader", None) is self:
            spec.loader = self._loader
        if getattr(module, "__loader__", None) in (None, self):
            try:
                module.__loader__ = self._loader
            except AttributeError:
                pass
        self._loader.exec_module(module)
        _notify(module)


class _Finder:
    """Answers only for watched names not being looked up already (by itself)."""

    def __init__(self) -> None:
        self.finding: set[str] = set()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _hooks or fullname in self.finding:
            return None
        self.finding.add(fullname)
        try:
            spec = find_spec(fullname)
        finally:
            self.finding.discard(fullname)
        loader = getattr(spec, "loader", None)
        if (spec is not None and loader is not None and hasattr(loader, "exec_module")
                and not isinstance(loader, _ChainedLoader)):
            spec.loader = _ChainedLoader(loader)  # type: ignore[assignment]
        return spec


_finder = _Finder()


def _notify(module: ModuleType) -> None:
    with _lock:
        hooks = _hooks.pop(module.__name__, [])
    for hook in hooks:  # outside the lock: a hook may import
        hook(module)


def when_imported(name: str, hook: Hook) -> None:
    """Call ``hook(module)`` once ``name`` (a top-level module) is imported; now if it is."""
    module = sys.modules.get(name)
    if module is not None:
        hook(module)
        return
    with _lock:
        _hooks.setdefault(name, []).append(hook)
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
