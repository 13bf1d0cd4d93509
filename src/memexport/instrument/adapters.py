"""Adapters: the shapes third-party libraries add to a kind, found lazily and one way.

A table maps a library's top-level module to the adapter module that knows it
(``"cachetools" -> "memexport.integrations.cachetools"``); an adapter is imported only once
its library is in ``sys.modules`` (an object of it exists, so the library is imported), so
memexport never imports a library the app did not. Packages add their own adapters through
the ``memexport.adapters`` entry-point group (name: the library module; value: the adapter
module), as ``opentelemetry_instrumentor`` packages do.

An adapter module defines ``shapes(kind: str) -> list[Shape]`` (the shapes it adds to that
kind, asked before the kind's own) and may define ``undo()``, which ``unload`` calls to take
back what it changed outside the objects it instrumented. Adapters import the kinds' public
tables and ``memexport.instrument``; nothing imports an adapter but this module.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from memexport.core import forks
from memexport.core.checks import shown
from memexport.core.importing import AdapterLoading, importing
from memexport.instrument.entrypoints import group_entries
from memexport.instrument.importhook import when_imported

if TYPE_CHECKING:  # pragma: no cover
    from memexport.instrument.kind import Shape

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "ON_IMPORT", "AdapterLoading", "loaded", "register",
           "shapes", "unload"]

ENTRY_POINT_GROUP = "memexport.adapters"

#: Library module -> adapter modules shipped with memexport.
BUILTIN: dict[str, tuple[str, ...]] = {
    "cachetools": ("memexport.integrations.cachetools",),
    "redis": ("memexport.integrations.redis",),
    "sqlalchemy": ("memexport.integrations.sqlalchemy",),
    "langgraph": ("memexport.integrations.langgraph", "memexport.integrations.langgraph_store"),
    "langchain_core": ("memexport.integrations.langchain",),
    "autogen_core": ("memexport.integrations.autogen",),
    "praisonaiagents": ("memexport.integrations.praisonai",),
    "agents": ("memexport.integrations.openai_agents",),
    "llama_index": ("memexport.integrations.llamaindex",),
    "pydantic_ai": ("memexport.integrations.pydantic_ai",),
    "mem0": ("memexport.integrations.mem0",),
    "crewai": ("memexport.integrations.crewai",),
    "httpx": ("memexport.integrations.httpx",),
    "httpx2": ("memexport.integrations.httpx",),
    "yaml": ("memexport.integrations.yaml",),
}

#: Libraries whose adapter changes how objects memexport already returned behave in them
#: (PyYAML's representers): loaded as soon as the library is imported, even when that is
#: after the last instrument call (a post-import hook set at the first call).
ON_IMPORT: tuple[str, ...] = ("yaml",)

_table: dict[str, list[str]] = {lib: list(mods) for lib, mods in BUILTIN.items()}
_modules: dict[str, ModuleType | None] = {}  # adapter module name -> module (None: failed)
_loading: set[str] = set()
_entry_points_read = False
_hooked = False
_lock = forks.RLock()
_cache: dict[str, tuple[int, tuple[Shape, ...]]] = {}


def register(library: str, adapter_module: str) -> None:
    """Add ``adapter_module`` as an adapter for objects of ``library`` (a module name)."""
    if not library.replace(".", "_").isidentifier():
        raise ValueError(f"library {shown(library)} is not a module name")
    with _lock:
        mods = _table.setdefault(library, [])
        if adapter_module not in mods:
            mods.append(adapter_module)
        _cache.clear()


def _read_entry_points() -> None:
    global _entry_points_read
    if _entry_points_read:
        return
    _entry_points_read = True
    try:
        found = group_entries(ENTRY_POINT_GROUP)  # importlib.metadata only when needed
    except Exception:  # broken metadata of some other package: ours still work
        return
    for name, value in found:
        try:
            register(name, value.split(":", 1)[0])
        except ValueError:
            continue


def _load(name: str) -> ModuleType | None:
    if name in _modules:
        return _modules[name]
    if name in _loading:
        raise AdapterLoading(f"memexport is importing its adapter {name} in this thread "
                             f"(a signal handler instrumenting during the first call?): "
                             f"instrument outside the handler, or once before installing it")
    _loading.add(name)
    try:
        with importing():
            module: ModuleType | None = importlib.import_module(name)
    except ImportError:
        module = None  # the library is there but too old or broken: its objects are
        # then instrumented by the kind's generic shapes
    finally:
        _loading.discard(name)
    _modules[name] = module
    return module


def _on_import(module: ModuleType) -> None:
    """Post-import hook: load the adapters of a library of ``ON_IMPORT`` just imported."""
    with _lock:
        for name in list(_table.get(module.__name__, ())):
            try:
                _load(name)
            except Exception:  # AdapterLoading, a broken adapter: the next shapes() retries
                _modules.pop(name, None)
        _cache.clear()


def _hook_imports() -> None:
    global _hooked
    if _hooked:
        return
    _hooked = True
    for library in ON_IMPORT:
        when_imported(library, _on_import)  # runs now if already imported


def shapes(kind: str) -> tuple[Shape, ...]:
    """The adapter shapes for ``kind`` of every library imported so far, in table order."""
    modules = sys.modules
    marker = len(modules)
    cached = _cache.get(kind)
    if cached is not None and cached[0] == marker:
        return cached[1]
    with _lock:
        _read_entry_points()
        _hook_imports()
        out: list[Shape] = []
        for library, adapter_modules in _table.items():
            if library not in modules:
                continue
            for name in adapter_modules:
                module = _load(name)
                fn = getattr(module, "shapes", None) if module is not None else None
                if fn is not None:
                    out.extend(fn(kind))
        result = tuple(out)
        _cache[kind] = (marker, result)
        return result


def loaded() -> dict[str, bool]:
    """Adapter modules asked for so far, and whether each imported."""
    with _lock:
        return {name: m is not None for name, m in _modules.items()}


def unload(adapter_module: str) -> None:
    """Call the adapter's ``undo()`` and forget it (objects it instrumented stay so)."""
    with _lock:
        module = _modules.pop(adapter_module, None)
        _cache.clear()
    undo: Any = getattr(module, "undo", None)
    if callable(undo):
        undo()
