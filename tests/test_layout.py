"""The package's layout holds: no import cycle, small modules, public names that shadow no
module, and an ``__init__`` that exports the public API and nothing else."""

from __future__ import annotations

import ast
import importlib.util
import types
from pathlib import Path

import memexport

SRC = Path(memexport.__file__).resolve().parent
MAX_LINES = 520  # "about 500": a module past this is doing two things


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every memexport module ``name`` imports, at any depth of the file (a function-level
    import is still a dependency)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # annotations only: no import at run time
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[:len(up) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):  # not its own packages
                out.add(t)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle() -> None:
    mods = _modules()
    known = set(mods)
    graph = {name: _imports(name, path, known) - {"memexport"} for name, path in mods.items()}
    assert not _cycles(graph), f"import cycles: {_cycles(graph)}"


def test_kinds_never_import_integrations() -> None:
    """Integrations register one way (the adapters table); kinds never import them."""
    mods = _modules()
    known = set(mods)
    for name, path in mods.items():
        if name.startswith(("memexport.kinds", "memexport.core", "memexport.instrument")):
            bad = {m for m in _imports(name, path, known)
                   if m.startswith("memexport.integrations")}
            assert not bad, f"{name} imports {bad}"


def test_no_module_over_about_500_lines() -> None:
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_public_functions_shadow_no_module() -> None:
    for name in memexport.__all__:
        assert importlib.util.find_spec(f"memexport.{name}") is None, (
            f"memexport.{name} is both a public name and a module")


def test_init_exports_the_public_api_and_nothing_else() -> None:
    for name in memexport.__all__:
        getattr(memexport, name)  # each public name resolves (imported on first use)
    public = {n for n, v in vars(memexport).items()
              if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public == set(memexport.__all__)
